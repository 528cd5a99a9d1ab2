"""``MemoryConfig(mimic="hatchet")``: Hatchet's coarser behaviour on the memory backend.

The memory backend is more precise than the engine: it fires a schedule at its
due time, retries exactly after the backoff, and so on. A test that relies on
that precision passes on memory and fails in production. Under
``mimic="hatchet"`` the backend reproduces, deterministically, the worst case
of each such difference documented in docs/hatchet.md (figures for
hatchet-lite v0.105.0), so such a test fails on the fake first. With
``mimic="none"`` (the default) every hook here changes nothing.

What ``mimic="hatchet"`` does (docs/testing.md, "What the fake guarantees, and `mimic`"):

- a one-off schedule due less than ``HOLD_SECONDS`` after it was made holds a
  slot of its worker from then until it is due (the Hatchet backend queues such
  a schedule at once and its worker holds it: ``hold_short_delays``);
- an exponential backoff is capped at ``ceil(backoff_max_seconds)``, as the
  engine stores whole seconds;
- a retry that waits a backoff starts ``RETRY_LATENESS_SECONDS`` after it
  (the engine polls waiting retries every 30 s while it has none);
- ``started_at`` is the latest attempt's start, not the first's;
- ``run_task`` (or a short delay, queued at once) called from a retried
  attempt returns the run the first attempt started (the SDK links the call
  to its parent, the engine answers with the existing child) and queues nothing;
- ``list_tasks`` shows runs due in the last ``LOOKUP_WINDOW`` only;
- a run that has not started ``schedule_timeout_seconds`` after it was queued
  fails, with attempts 0 and the Hatchet backend's error;
- priority orders the runs of one task only (``ReadyQueue``);
- cancelling a started run sets ``ctx.cancelled`` and cancels its coroutine
  ``CANCEL_GRACE_SECONDS`` later.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from owlclaw.backends.memory.config import MemoryConfig, MimicMode
from owlclaw.backends.memory.guards import CURRENT_RUN
from owlclaw.backends.memory.runs import TIMEOUT, WAKE, Entry, Run, Timetable
from owlclaw.scheduler.limits import MAX_BACKOFF_SECONDS, exponential_delay
from owlclaw.scheduler.models import TaskInfo, TaskOptions, TaskState

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "HOLD_SECONDS",
    "LOOKUP_WINDOW",
    "RETRY_LATENESS_SECONDS",
    "Mimic",
    "MimicMode",
]

#: A one-off schedule due sooner than this is held by a worker slot until due
#: (the Hatchet backend's ``wire.HOLD_SECONDS``; docs/hatchet.md, "Short delays").
HOLD_SECONDS = 6.0
#: How late a retry starts after its backoff: the engine moves due retries by
#: polling, every 30 s while it has none waiting (docs/hatchet.md, "Backoff is in
#: whole seconds"; a loaded machine adds more, which this does not model).
RETRY_LATENESS_SECONDS = 30.0
#: How long the SDK lets a cancelled run's code go on after setting
#: ``ctx.cancelled``, before it cancels the coroutine (docs/hatchet.md,
#: "Cancelling a run that has started is cooperative").
CANCEL_GRACE_SECONDS = 1.0
#: How far back the engine's run listing reaches (``LIST_WINDOW`` of the Hatchet backend).
LOOKUP_WINDOW = timedelta(days=6)


class Mimic:
    """The hooks the memory backend calls; each is a no-op unless mode is "hatchet"."""

    def __init__(
        self,
        config: MemoryConfig | None = None,
        book: Timetable | None = None,
        finish: Callable[[Run, TaskState], None] | None = None,
    ) -> None:
        config = config or MemoryConfig()
        self._finish = finish  # the scheduler's: a run that ends here ends as every run does
        self.hatchet = config.mimic == "hatchet"
        self._schedule_timeout = timedelta(seconds=config.schedule_timeout_seconds)
        self._book = book
        # kept for the scheduler's life, as the engine keeps them (a mimic is for tests)
        self._spawns: dict[tuple[str, int], int] = {}  # (parent run, attempt) -> run_task calls so far
        self._children: dict[tuple[str, int], str] = {}  # (parent run, spawn index) -> child run id

    def holds(self, due: datetime) -> bool:
        """Whether a schedule made now for ``due`` holds a worker slot until due
        (the clock is read under "hatchet" only: this is on every schedule's path)."""
        if not self.hatchet or self._book is None:
            return False
        return (due - self._book.now()).total_seconds() < HOLD_SECONDS

    def retry_delay(self, options: TaskOptions, failed_attempt: int, delay: float) -> float:
        """Seconds from a failed attempt to its retry, given the exact backoff ``delay``."""
        if not self.hatchet or delay <= 0:
            return delay
        if options.backoff == "exponential" and options.backoff_base is not None:
            cap = math.ceil(options.backoff_max_seconds or MAX_BACKOFF_SECONDS)
            delay = exponential_delay(options.backoff_base, failed_attempt, cap)
        return delay + RETRY_LATENESS_SECONDS

    def queued(self, run: Run) -> None:
        """``run`` joins the ready queue: under "hatchet" it fails if it has not
        started ``schedule_timeout_seconds`` from now. The deadline is the run's
        pending entry (``run.entry``), so a cancel or a start (``started``) drops it."""
        if not self.hatchet or self._book is None:
            return
        # a WAKE entry resolves a future when its time comes: its callback is the deadline
        deadline: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self._book.push(self._book.now() + self._schedule_timeout, WAKE, deadline)
        deadline.add_done_callback(lambda _: self._expire(run, entry))
        run.entry = entry

    def _expire(self, run: Run, entry: Entry) -> None:
        if run.entry is not entry or run.state is not TaskState.QUEUED or self._finish is None:
            return
        run.entry = None
        run.error = (
            "TimeoutError: no worker started the run within the schedule timeout "
            "(scheduler.memory.schedule_timeout_seconds, as scheduler.hatchet.schedule_timeout_seconds); "
            f"keep a worker running for task {run.options.name!r}"
        )
        self._finish(run, TaskState.FAILED)

    def started(self, run: Run) -> bool:
        """An attempt of ``run`` starts (its schedule-timeout deadline is dropped);
        returns whether it sets ``started_at`` again (the engine does, for each attempt)."""
        if self.hatchet and run.entry is not None and run.entry.kind == WAKE:
            run.entry.dead = True
            run.entry = None
        return self.hatchet

    def child(self, due: datetime | None, queue: Callable[[], str]) -> str:
        """The id of the run ``queue()`` makes, due at ``due`` (None: now). Under
        "hatchet", a ``run_task`` (or a short delay, queued at once: ``holds``)
        from inside an attempt is its run's child: a later attempt gets the
        child an earlier one made, and nothing is queued."""
        linked = self.hatchet and (due is None or self.holds(due))
        parent = CURRENT_RUN.get() if linked else None
        if parent is None:
            return queue()
        attempt = (parent.id, parent.attempts)
        index = self._spawns.get(attempt, 0)
        self._spawns[attempt] = index + 1
        key = (parent.id, index)
        if key not in self._children:
            self._children[key] = queue()
        return self._children[key]

    def cancel(self, run: Run) -> None:
        """Stop ``run``'s attempt in flight, cancelled (``ctx.cancelled`` is set):
        at once, or under "hatchet" ``CANCEL_GRACE_SECONDS`` later, by the
        scheduler's clock (and by the real one, for code that takes real time).
        Code that finishes within the grace is discarded: the run stays cancelled."""
        task = run.task
        if task is None or task.done():
            return
        if self._book is None:  # a Mimic of its own (unit tests): no scheduler to tell
            task.cancel()
            return
        if not self.hatchet:
            self._book.cancel_attempt(task)
            return
        grace = timedelta(seconds=CANCEL_GRACE_SECONDS)
        self._book.push(self._book.now() + grace, TIMEOUT, (run, run.attempts))
        asyncio.get_running_loop().call_later(CANCEL_GRACE_SECONDS, self._book.cancel_attempt, task)

    def listed(self, rows: list[TaskInfo], now: datetime) -> list[TaskInfo]:
        """A listing (newest due first) cut to the engine's window."""
        if not self.hatchet:
            return rows
        since = now - LOOKUP_WINDOW
        return [r for r in rows if r.scheduled_at is None or r.scheduled_at >= since]
