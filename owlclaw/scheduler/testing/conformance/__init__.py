"""The behavioural contract every backend must pass.

Opt a backend in by subclassing and providing the ``scheduler`` and
``single_slot_scheduler`` fixtures::

    from owlclaw.scheduler.testing import SchedulerConformance, register_conformance_tasks

    class TestMyBackend(SchedulerConformance):
        @pytest.fixture
        async def scheduler(self):
            s = register_conformance_tasks(MyScheduler(...))
            async with s:
                await s.start_worker()
                yield s
                await s.stop_worker()

Delays are a few real seconds so the same tests run against a real engine;
on a virtual clock they take no time. A backend on a virtual clock also
inherits :class:`VirtualTimeConformance`, which adds the tests only such a
clock can run and moves time with ``scheduler.advance``::

    class TestMyVirtualBackend(VirtualTimeConformance, SchedulerConformance): ...

One module per concern: ``bad_calls`` (the table of bad input), ``running``,
``scheduling`` (delays, listings, crons), ``policies`` (retries, backoff,
on_failure, timeouts, concurrency, priority), ``durable`` (``ctx.sleep``),
``schedules`` (time zones, DST, overlap, catch-up, pause, backfill; skipped
without ``capabilities.schedules``), ``sync_tasks`` (sync functions: threads,
timeouts, ``ctx.sync_scheduler``, ``sys.exit()``), ``agreement`` (listings
agree with status reads), ``parity`` (listing order and durable slots, where
memory once differed from Hatchet), ``virtual_time`` and ``faults``
(:class:`SchedulerFaultConformance`, opted into separately).
"""

from owlclaw.scheduler.testing.conformance._base import ConformanceBase
from owlclaw.scheduler.testing.conformance.agreement import ListingAgreementConformance
from owlclaw.scheduler.testing.conformance.bad_calls import (
    BAD_CALLS,
    BadCall,
    BadCallConformance,
    check_bad_call,
)
from owlclaw.scheduler.testing.conformance.durable import DurableSleepConformance
from owlclaw.scheduler.testing.conformance.faults import SchedulerFaultConformance
from owlclaw.scheduler.testing.conformance.parity import ParityConformance
from owlclaw.scheduler.testing.conformance.policies import PolicyConformance
from owlclaw.scheduler.testing.conformance.running import JSON_VALUES, RunningConformance
from owlclaw.scheduler.testing.conformance.schedules import ScheduleConformance
from owlclaw.scheduler.testing.conformance.scheduling import SchedulingConformance
from owlclaw.scheduler.testing.conformance.sync_tasks import SyncTaskConformance
from owlclaw.scheduler.testing.conformance.virtual_time import VirtualTimeConformance

__all__ = [
    "BAD_CALLS",
    "JSON_VALUES",
    "BadCall",
    "ConformanceBase",
    "ScheduleConformance",
    "SchedulerConformance",
    "SchedulerFaultConformance",
    "VirtualTimeConformance",
    "check_bad_call",
]


class SchedulerConformance(
    RunningConformance,
    SchedulingConformance,
    PolicyConformance,
    DurableSleepConformance,
    SyncTaskConformance,
    ListingAgreementConformance,
    ParityConformance,
    BadCallConformance,
    ScheduleConformance,
):
    """Every rule of the ``Scheduler`` protocol, as tests."""
