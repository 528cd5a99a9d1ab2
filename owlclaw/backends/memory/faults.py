"""Faults the in-memory backend injects on demand, so agent code can be
tested against what a real engine does to it.

Every ``MemoryScheduler`` has one ``Faults`` at ``scheduler.faults``::

    scheduler.faults.crash_during("charge_card")      # next attempt lost mid-task
    scheduler.faults.duplicate_delivery("charge_card")  # next run executes twice
    scheduler.faults.drop_connection()                # next call: SchedulerConnectionError
    scheduler.faults.outage(seconds=600)              # engine down for 10 (virtual) minutes
    await scheduler.faults.crash_worker()             # the worker dies now

Each fault mirrors what the Hatchet backend does (docs/hatchet.md): a lost
attempt is delivered again from the start, even with ``retries=0``, after the
engine notices the dead worker (``redelivery_seconds``), and ``ctx.attempt``
and ``attempts`` count it, and a replayed durable sleep keeps its first
wake-up time; calls during a lost connection or an outage raise
``SchedulerConnectionError``; what falls due during an outage runs when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from owlclaw.scheduler.errors import SchedulerConnectionError

__all__ = ["FaultTarget", "Faults"]

#: How long the engine takes to notice a dead worker and hand its runs to
#: another (about 30 s measured with hatchet-lite v0.105.0).
REDELIVERY_SECONDS = 30.0


@dataclass
class _Plan:
    task_name: str | None  # None: any task
    times: int


class FaultTarget(Protocol):
    """What ``Faults`` needs of the scheduler it breaks (the memory backend's
    ``Timetable``)."""

    def now(self) -> datetime:
        """The scheduler's clock."""
        ...

    def wake(self) -> None:
        """Make the worker re-read its due times (an outage began or ended)."""
        ...

    def running(self) -> list[str]:
        """Ids of the runs with an attempt in flight."""
        ...

    def requeue(self, run_id: str, delay: float) -> None:
        """The run's attempt is lost: queue the run again after ``delay`` seconds."""
        ...

    async def cancel_attempts(self, run_ids: list[str]) -> None:
        """Cancel these runs' attempts in flight; return once they have stopped."""
        ...

    def is_final(self, run_id: str) -> bool:
        """Whether the run has finished (True for an unknown id)."""
        ...


class Faults:
    """Faults to inject into one ``MemoryScheduler``; see the module docstring."""

    def __init__(self, target: FaultTarget) -> None:
        self._target = target
        #: Seconds between a lost attempt and its redelivery (clock time).
        self.redelivery_seconds = REDELIVERY_SECONDS
        self._crashes: list[_Plan] = []
        self._duplicates: list[_Plan] = []
        self._drops: list[tuple[frozenset[str] | None, int]] = []
        self._outages: list[tuple[datetime, datetime]] = []
        # any drop or outage planned (outages stay listed once over); the fire path reads it too
        self.calls_fail = False
        #: Runs that lost an attempt to a fault, in order (a run id per loss).
        self.lost_attempts: list[str] = []
        self._wakes: dict[str, list[datetime]] = {}  # run id -> planned wake-ups, in order
        self._sleeps: dict[tuple[str, int], int] = {}  # (run id, attempt) -> sleeps so far

    def __repr__(self) -> str:
        return (
            f"Faults(crashes={len(self._crashes)}, duplicates={len(self._duplicates)}, "
            f"drops={len(self._drops)}, outages={len(self._outages)})"
        )

    # planning

    def crash_during(self, task_name: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` attempts of ``task_name`` (any task if None) are
        lost mid-task: the function runs until it first waits (an ``await``
        that yields, a durable sleep, a sync function's thread) and the worker
        dies there; if it never waits, it dies after the function returns and
        before the result is reported. The run is delivered again from the
        start after ``redelivery_seconds``, as attempt + 1."""
        self._crashes.append(_Plan(task_name, _positive(times)))

    def duplicate_delivery(self, task_name: str | None = None, *, times: int = 1) -> None:
        """The next ``times`` runs of ``task_name`` that succeed execute twice:
        the first result is lost as if the worker died before acknowledging it,
        and the run is delivered again at once (``ctx.attempt == 2``, same
        ``ctx.task_id``); the second result is the one recorded."""
        self._duplicates.append(_Plan(task_name, _positive(times)))

    def drop_connection(self, *, times: int = 1, operations: Iterable[str] | None = None) -> None:
        """The next ``times`` calls (of ``operations`` only, e.g. ``["run_task"]``,
        if given) raise ``SchedulerConnectionError`` and do nothing, like a
        network blip on the way to the engine."""
        names = frozenset(operations) if operations is not None else None
        self._drops.append((names, _positive(times)))
        self.calls_fail = True

    def outage(self, seconds: float, *, start_in: float = 0.0) -> None:
        """The engine is down from ``start_in`` seconds from now for ``seconds``
        (clock time, so virtual on a ``VirtualClock``): every call and
        ``connect()`` raise ``SchedulerConnectionError``, and nothing fires or
        wakes. Schedules, retries and durable sleeps that fell due run when it
        ends; a cron fires once then and goes on from there. Running attempts
        go on."""
        if not seconds > 0 or start_in < 0:
            raise ValueError(f"outage() needs seconds > 0 and start_in >= 0, got {seconds!r}, {start_in!r}")
        start = self._target.now() + timedelta(seconds=start_in)
        self._outages.append((start, start + timedelta(seconds=seconds)))
        self.calls_fail = True
        self._target.wake()

    def clear(self) -> None:
        """Cancel every planned fault and end any outage now."""
        self._crashes.clear()
        self._duplicates.clear()
        self._drops.clear()
        self._outages.clear()
        self.calls_fail = False
        self._target.wake()

    async def crash_worker(self) -> int:
        """The worker dies now: every running attempt, including durable tasks
        parked in a sleep, is lost and delivered again after
        ``redelivery_seconds``. Returns how many attempts were lost."""
        lost = self._target.running()
        for run_id in lost:
            self._lose(run_id, self.redelivery_seconds)
        await self._target.cancel_attempts(lost)
        return len(lost)

    # hooks called by MemoryScheduler

    def before_call(self, operation: str) -> None:
        """Raise for a dropped connection or an outage."""
        if not self.calls_fail:  # the usual case, one test (read by every public call)
            return
        now = self._target.now()
        for start, end in self._outages:
            if start <= now < end:
                raise SchedulerConnectionError(
                    f"cannot {operation}: the engine is unreachable (an outage injected by "
                    f"scheduler.faults.outage() until {end.isoformat()}); retry later, "
                    "or let the call fail and be retried by your caller"
                )
        for i, (names, times) in enumerate(self._drops):
            if names is None or operation in names:
                self._drops[i] = (names, times - 1)
                if times == 1:
                    del self._drops[i]
                    self.calls_fail = bool(self._drops or self._outages)
                raise SchedulerConnectionError(
                    f"cannot {operation}: the connection to the engine was lost (injected by "
                    "scheduler.faults.drop_connection()); the call had no effect, retry it"
                )

    def engine_down(self, now: datetime) -> bool:
        return bool(self._outages) and any(start <= now < end for start, end in self._outages)

    def defer(self, due: datetime) -> datetime:
        """When something due at ``due`` can fire, given the outages."""
        if not self._outages:
            return due
        for start, end in sorted(self._outages):
            if start <= due < end:
                due = end
        return due

    @property
    def planned(self) -> bool:
        """Whether a crash or a duplicate is planned (``execute`` has work to do)."""
        return bool(self._crashes or self._duplicates)

    async def execute(self, run_id: str, task_name: str, attempt: Awaitable[Any]) -> Any:
        """Run one attempt, losing it when a crash or duplicate is planned."""
        if self._crashes and _take(self._crashes, task_name):
            inner = asyncio.ensure_future(attempt)
            await asyncio.sleep(0)  # let it run to its first wait
            inner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inner
            self._lose(run_id, self.redelivery_seconds)
            raise asyncio.CancelledError
        result = await attempt
        if self._duplicates and _take(self._duplicates, task_name):
            self._lose(run_id, 0.0)
            raise asyncio.CancelledError
        return result

    def wake_time(self, run_id: str, attempt: int, due: datetime) -> datetime:
        """When the durable sleep that would end at ``due`` ends: a run that lost
        an attempt replays its sleeps, and each keeps its first wake-up time
        (Hatchet's durable event log), or ends now if that time has passed."""
        if len(self._wakes) > 1000:
            self._forget_finished()
        key = (run_id, attempt)
        index = self._sleeps.get(key, 0)
        self._sleeps[key] = index + 1
        planned = self._wakes.setdefault(run_id, [])
        if run_id in self.lost_attempts and index < len(planned):
            return planned[index]
        del planned[index:]
        planned.append(due)
        return due

    def _forget_finished(self) -> None:
        done = {i for i in self._wakes if self._target.is_final(i)}
        self._wakes = {i: w for i, w in self._wakes.items() if i not in done}
        self._sleeps = {k: n for k, n in self._sleeps.items() if k[0] not in done}

    def _lose(self, run_id: str, delay: float) -> None:
        self.lost_attempts.append(run_id)
        self._target.requeue(run_id, delay)


def _take(plans: list[_Plan], task_name: str) -> bool:
    for i, plan in enumerate(plans):
        if plan.task_name is None or plan.task_name == task_name:
            plan.times -= 1
            if plan.times == 0:
                del plans[i]
            return True
    return False


def _positive(times: int) -> int:
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be an int >= 1, got {times!r}")
    return times
