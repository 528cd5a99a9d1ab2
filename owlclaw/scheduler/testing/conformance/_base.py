"""What every part of the suite shares: the fixtures a backend provides, the
settings it may tune, and the helpers the tests wait and move time with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import ClassVar

import pytest

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["ConformanceBase"]


class ConformanceBase:
    """Fixtures, settings and helpers of the conformance suite.

    The helpers that move or read time (:meth:`advance`, :meth:`now`) assume
    the real clock; ``VirtualTimeConformance`` overrides both for backends
    whose clock only the test moves.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    #: Slack allowed between a due time and the start of the run, in seconds.
    start_tolerance: float = 10.0
    #: Longest a test waits for a run to finish, in seconds.
    wait_timeout: float = 60.0
    #: Longest a test waits for a listing to show a run as its status does, in
    #: seconds: listings may lag the status of a run on a real engine.
    listing_timeout: float = 120.0
    #: How late a retry may start after its backoff, in seconds. A real engine
    #: polls its retry queue, and polls it less often while it stays empty (see
    #: docs/hatchet.md for the delays measured on Hatchet).
    retry_slack: float = 60.0
    #: Whether a retried run's ``started_at`` stays the first attempt's start.
    #: A backend whose engine restarts the stamp at each attempt sets it False;
    #: ``started_at`` must then still fall within the run's attempts.
    started_at_is_first_attempt: bool = True

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[Scheduler]:
        """A connected scheduler with ``register_conformance_tasks`` applied
        and a worker running. Backends must override this."""
        raise NotImplementedError("provide a `scheduler` fixture for your backend")
        yield  # pragma: no cover

    @pytest.fixture
    async def single_slot_scheduler(self) -> AsyncIterator[Scheduler]:
        """Like ``scheduler``, but its worker has 1 slot and nothing else runs
        on it; timestamps must be real (priority is judged by start times).
        Backends must override this."""
        raise NotImplementedError("provide a `single_slot_scheduler` fixture for your backend")
        yield  # pragma: no cover

    # time: the two hooks a virtual-clock backend overrides

    async def advance(self, scheduler: Scheduler, seconds: float) -> None:
        """Let ``seconds`` pass for ``scheduler``: on the real clock, wait them out."""
        await asyncio.sleep(seconds)

    async def now(self, scheduler: Scheduler) -> datetime:
        """The time by ``scheduler``'s clock: on the real clock, the time now."""
        return utc_now()

    # waiting

    async def wait_for_state(
        self, scheduler: Scheduler, task_id: str, states: Iterable[TaskState], timeout: float = 30
    ) -> TaskInfo:
        """Poll the run's status until it is in one of ``states``."""
        wanted = set(states)
        return await poll_until(
            lambda: scheduler.get_task_status(task_id),
            lambda info: info.state in wanted,
            timeout=timeout,
            interval=0.05,
            what=f"task {task_id} to be {sorted(s.value for s in wanted)}",
        )

    async def finish(self, scheduler: Scheduler, task_id: str) -> TaskInfo:
        return await scheduler.wait_for_task(task_id, timeout=self.wait_timeout)
