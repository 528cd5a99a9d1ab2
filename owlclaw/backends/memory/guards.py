"""Bounds on the memory backend's own waits (docs/testing.md, "Bounds").

* ``RunawayGuard``: a run that queues a run of itself "now" (``run_task`` on
  its own name, or ``schedule_task`` with a delay that rounds to zero), or a
  durable task that sleeps less than a microsecond in a loop, keeps one
  instant busy forever, so ``advance()`` and ``run_until_idle()`` could never
  return. Past ``MAX_SAME_INSTANT`` links of such a chain the next call in
  the task raises ``RunawayTaskError`` (ending the chain) and the scheduler's
  waiting call raises it too.
* ``stop_attempts``: the end of ``stop_worker()``: attempts still running
  after ``shutdown_grace_seconds`` (and durable sleepers at once) are
  cancelled and their runs queued again, so shutdown always ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from owlclaw.backends.memory.runs import Run, Timetable
from owlclaw.scheduler.clock import VirtualClock
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import NotSupportedError, RunawayTaskError, WaitTimeoutError
from owlclaw.scheduler.models import TaskState

__all__ = [
    "CURRENT_RUN",
    "MAX_SAME_INSTANT",
    "RunawayGuard",
    "await_progress",
    "settle_within",
    "stop_attempts",
    "wait_hint",
    "warn_no_worker",
]

log = logging.getLogger("owlclaw.scheduler.memory")

#: Most runs queued "now" one from another (or zero-length durable sleeps of
#: one run) at a single instant before the chain counts as runaway.
MAX_SAME_INSTANT = 1000

#: The run whose attempt is executing in this context (set by the attempt's task).
CURRENT_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar("owlclaw_memory_run", default=None)


class RunawayGuard:
    """Counts same-instant chains and remembers the first runaway."""

    def __init__(self) -> None:
        self.error: RunawayTaskError | None = None

    def submitted(self, run: Run, due: datetime | None, now: datetime) -> None:
        """``run`` was just created, due at ``due`` (None: now); raise if it
        extends a chain past ``MAX_SAME_INSTANT``."""
        parent = CURRENT_RUN.get()
        if parent is None or (due is not None and due > now):
            return
        run.chain = parent.chain + 1
        if run.chain > MAX_SAME_INSTANT:
            self._fail(
                f"a run of task {parent.options.name!r} queued a run of {run.options.name!r} due at "
                f"once, {MAX_SAME_INSTANT} times in a chain at {now.isoformat()}; time cannot move past "
                "that instant. Schedule the next run with a delay (e.g. delay_seconds=1) or add a "
                "stop condition",
            )

    def slept(self, run: Run, wake: datetime, now: datetime) -> None:
        """``run`` sleeps durably until ``wake``; raise if it keeps waking at ``now``."""
        run.instant_sleeps = run.instant_sleeps + 1 if wake <= now else 0
        if run.instant_sleeps > MAX_SAME_INSTANT:
            self._fail(
                f"task {run.options.name!r} ({run.id}) called ctx.sleep() with less than a microsecond "
                f"{MAX_SAME_INSTANT} times in a row; time cannot move past {now.isoformat()}. "
                "Sleep at least a millisecond, or add a stop condition",
            )

    def _fail(self, message: str) -> None:
        error = RunawayTaskError(message)
        if self.error is None:
            self.error = error
        raise error

    def check(self) -> None:
        """Raise the runaway seen since the last check, once."""
        error, self.error = self.error, None
        if error is not None:
            raise RunawayTaskError(str(error))


async def stop_attempts(book: Timetable, running: set[asyncio.Task[None]], grace: float) -> None:
    """Let the attempts in ``running`` finish for ``grace`` seconds of real
    time; durable sleepers, and after the grace everything else, are
    cancelled and their runs queued again (as a worker crash would leave
    them on an engine: a new worker runs them from the start)."""
    sleeping = [r.task for r in book.runs.values() if r.sleeping and r.task is not None]
    _requeue([r for r in book.runs.values() if r.sleeping], book)
    for task in sleeping:
        book.cancel_attempt(task)
    pending = {t for t in running if not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=grace)
    if pending:
        stuck = [r for r in book.runs.values() if r.task in pending and r.state is TaskState.RUNNING]
        _requeue(stuck, book)
        for task in pending:
            book.cancel_attempt(task)
        # a task that swallows its cancellation is left behind, not waited for forever
        _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            log.warning("attempt %s ignored its cancellation at shutdown; left running", task.get_name())
    if sleeping:
        await asyncio.wait(sleeping, timeout=grace)


def _requeue(runs: list[Run], book: Timetable) -> None:
    for run in runs:
        if run.state is TaskState.RUNNING:
            run.sleeping = False
            book.requeue(run.id, 0.0)


def wait_hint(*, worker: bool, virtual: bool) -> str:
    """What a ``WaitTimeoutError`` adds: the call that would let the run finish."""
    if not worker:
        return "; no worker is running: call start_worker()"
    if virtual:
        return (
            " of virtual time (on a virtual clock the timeout counts virtual seconds, and what falls "
            "due later does not run): call advance(seconds) or run_until_idle(), or wait longer"
        )
    return ""


def diagnose(*, running: bool) -> list[Finding]:
    """``MemoryScheduler.diagnose``: where its tasks run."""
    where = "running" if running else "started by start_worker()"
    return [
        Finding(
            "worker",
            "ok",
            f"tasks run inside the process that owns this scheduler (its worker is {where}); "
            "nothing outlives that process",
        )
    ]


def need_virtual(clock: VirtualClock | None, what: str) -> VirtualClock:
    """The virtual clock ``what`` needs, or ``NotSupportedError``."""
    if clock is None:
        raise NotSupportedError(f"{what} needs virtual time: MemoryScheduler(clock=VirtualClock(start=...))")
    return clock


def warn_no_worker(what: str, worker: object, queued: int) -> None:
    """``queued`` runs fell due during ``what`` but no worker runs them: say what to call."""
    if worker is None and queued:
        log.warning(
            "%s: %d run(s) are due but no worker is running, so none ran; "
            "call `await scheduler.start_worker()` first",
            what,
            queued,
        )


async def settle_within(settle: Coroutine[Any, Any, None], seconds: float) -> None:
    """``run_until_idle()`` on the real clock: ``settle``, for at most ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await settle
    except TimeoutError:
        raise WaitTimeoutError(
            f"run_until_idle() on the real clock: runs were still running or due after {seconds:g}s "
            "(a task that queues more work each time is never idle); pass a larger max_seconds, "
            "or use a VirtualClock"
        ) from None


async def await_progress(progress: asyncio.Event, seconds: float, book: Timetable) -> None:
    """Wait for an attempt to finish or park, at most ``seconds`` of real time.

    ``advance()`` and ``run_until_idle()`` wait for what is due to finish; an
    attempt that awaits something that never happens would keep them waiting
    forever, so they give up with ``WaitTimeoutError`` naming the attempts.
    """
    waiter = asyncio.ensure_future(progress.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()
    if done:
        return
    stuck = [
        f"{run.options.name!r} ({run.id})"
        for run in book.runs.values()
        if run.state is TaskState.RUNNING and not run.sleeping
    ]
    raise WaitTimeoutError(
        f"no running attempt finished for {seconds:g}s of real time while time was being moved "
        f"(still running: {', '.join(stuck) or 'none'}); advance() and run_until_idle() wait for what "
        "is due to finish: give the task a timeout=, make sure what it awaits happens, or raise "
        "settle_timeout_seconds"
    )
