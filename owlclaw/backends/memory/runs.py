"""The memory backend's bookkeeping: its runs, crons and the heap of due times.

``Timetable`` is also the interface ``Faults`` works through (``FaultTarget``
in ``owlclaw.backends.memory.faults``): it can lose an attempt and queue its
run again, list and cancel running attempts, and wake the worker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from owlclaw.scheduler.clock import Clock
from owlclaw.scheduler.cron import CronPlan, cron_plan
from owlclaw.scheduler.errors import TaskNotFoundError
from owlclaw.scheduler.kit import copy_json
from owlclaw.scheduler.models import CronInfo, TaskInfo, TaskOptions, TaskState

__all__ = [
    "CANCEL_WAIT_SECONDS",
    "CRON",
    "DUE",
    "SCHEDULE",
    "TIMEOUT",
    "WAKE",
    "Cron",
    "Entry",
    "Run",
    "Timetable",
]

_new = object.__new__
_set = object.__setattr__
_PLAIN = frozenset({str, int, float, bool, type(None)})  # JSON values copy_json leaves as they are

#: Longest wait for cancelled attempts to stop (``Faults.crash_worker``).
CANCEL_WAIT_SECONDS = 10.0

# What a heap entry does when its time comes.
DUE = "due"  # a run leaves SCHEDULED (or its retry delay) and is queued
CRON = "cron"  # a cron ticks: a new run is queued, the next tick is pushed
WAKE = "wake"  # a durable sleep ends
TIMEOUT = "timeout"  # an attempt has run too long
SCHEDULE = "schedule"  # a schedule's occurrence falls due (owlclaw.backends.memory.schedules)


@dataclass(eq=False, slots=True)
class Entry:
    """What falls due; the heap holds ``(due, seq, entry)`` tuples, compared in C."""

    due: datetime
    seq: int
    kind: str
    ref: Any
    dead: bool = False


@dataclass(eq=False, slots=True)
class Run:
    id: str
    options: TaskOptions
    payload: dict[str, Any]
    state: TaskState
    scheduled_at: datetime
    priority: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    result: Any = None
    error: str | None = None
    entry: Entry | None = None  # pending due/retry entry
    task: asyncio.Task[None] | None = None
    timed_out_attempt: int = 0
    fired: bool = False  # queued at least once: a run, not only a schedule
    sleeping: bool = False  # parked in a durable sleep
    chain: int = 0  # runs queued "now" one from another up to this one (guards.RunawayGuard)
    instant_sleeps: int = 0  # consecutive durable sleeps that woke at the same instant
    trace: dict[str, str] = field(default_factory=dict)  # the scheduling call's trace context
    cancelled: bool = False  # cancel_task was called
    occurrence: Any = None  # the schedules.Occurrence that fired this run, if any
    holds_slot: bool = False  # mimic: a short delay holding a worker slot until due (ReadyQueue.reserve)
    _done: asyncio.Event | None = None

    def cancel(self) -> None:
        self.cancelled = True

    def is_set(self) -> bool:
        """The attempts' cancel flag (``TaskContext(cancel_event=run)``): whether ``cancel`` was called."""
        return self.cancelled

    def left_running(self) -> bool:
        """Whether the run is no longer RUNNING (cancelled, or its attempt lost
        to a fault): ``run_attempt(abandoned=...)``."""
        return self.state is not TaskState.RUNNING

    @property
    def done(self) -> asyncio.Event:
        """Set once the run is final."""
        if self._done is None:
            self._done = asyncio.Event()
            if self.state.is_final:
                self._done.set()
        return self._done

    def mark_done(self) -> None:
        if self._done is not None:
            self._done.set()

    def info(self) -> TaskInfo:
        # A frozen dataclass's __init__ sets each field through object.__setattr__ (a third
        # of a status call): fill its __dict__ at once (every field; a unit test checks).
        # Payload and result are JSON-safe (check_payload, check_result): a copy is
        # what a round trip gives. copy_json's flat-dict case inlined (a frame is a
        # tenth of a status call).
        payload = self.payload.copy()
        for value in payload.values():
            if type(value) not in _PLAIN:
                payload = copy_json(self.payload)
                break
        result = self.result
        if type(result) not in _PLAIN:
            result = copy_json(result)
        info = _new(TaskInfo)
        _set(
            info,
            "__dict__",
            {
                "id": self.id,
                "task_name": self.options.name,
                "state": self.state,
                "payload": payload,
                "scheduled_at": self.scheduled_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "attempts": self.attempts,
                "result": result,
                "error": self.error,
            },
        )
        return info

    def lateness(self) -> float | None:
        """Seconds from due time to the first attempt's start."""
        if self.started_at is None:
            return None
        return (self.started_at - self.scheduled_at).total_seconds()


@dataclass(eq=False)
class Cron:
    id: str
    task_name: str
    expression: str
    payload: dict[str, Any]
    entry: Entry
    plan: CronPlan


class Timetable:
    """Runs by id, crons by id, and the heap of what falls due when."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.heap: list[tuple[datetime, int, Entry]] = []
        # the same entries but crons' ticks, for next_due(skip_crons=True); an
        # entry stays in it once fired or dead (dead: the backend marks fired
        # entries dead) until it reaches the top
        self._others: list[tuple[datetime, int, Entry]] = []
        self.seq = itertools.count()
        self._ids = itertools.count()
        # ids look like uuid4's: random per timetable, then a counter in the last group
        h = os.urandom(10).hex()
        self._id_prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[15], 16) & 3]}{h[16:19]}-"
        self.runs: dict[str, Run] = {}
        self.crons: dict[str, Cron] = {}
        #: Set when the heap changes, so the worker re-reads its next due time.
        #: Bound to an event loop: the scheduler makes a new one per connection.
        self.wakeup = asyncio.Event()
        #: Called with an attempt's task once it has ended (set by the scheduler).
        self.attempt_ended: Callable[[asyncio.Task[None]], None] = lambda task: None

    def cancel_attempt(self, task: asyncio.Task[None]) -> None:
        """Cancel an attempt's task. One cancelled before its first step runs
        none of its code (no ``finally``), so its end is reported by a done
        callback to ``attempt_ended`` (which ignores an end reported already)."""
        task.add_done_callback(self.attempt_ended)
        task.cancel()

    def push(self, due: datetime, kind: str, ref: Any) -> Entry:
        seq = next(self.seq)
        entry = Entry(due, seq, kind, ref)
        item = (due, seq, entry)
        heapq.heappush(self.heap, item)
        if kind != CRON and kind != SCHEDULE:  # run_until_idle lets repeating ticks be
            heapq.heappush(self._others, item)
        # the worker's next due time changed (on a virtual clock it waits for no time: only "now" counts)
        if self.heap[0][2] is entry and (not self.clock.is_virtual or due <= self.clock.now()):
            self.wakeup.set()
        return entry

    def next_due(self, *, skip_crons: bool = False) -> datetime | None:
        """The earliest live due time (crons' ticks left out if ``skip_crons``)."""
        heap = self.heap
        while heap and heap[0][2].dead:
            heapq.heappop(heap)
        if not skip_crons:
            return heap[0][0] if heap else None
        others = self._others
        while others and others[0][2].dead:
            heapq.heappop(others)
        return others[0][0] if others else None

    def new_id(self) -> str:
        """A unique id in the UUID text form (version 4 bits set, as uuid4's)."""
        return f"{self._id_prefix}{next(self._ids):012x}"

    def new_run(self, options: TaskOptions, payload: dict[str, Any], at: datetime, state: TaskState) -> Run:
        run = Run(self.new_id(), options, payload, state, at, options.priority)
        self.runs[run.id] = run
        return run

    def run(self, task_id: str) -> Run:
        try:
            return self.runs[task_id]
        except (KeyError, TypeError):
            raise TaskNotFoundError(
                f"no task with id {task_id!r}; ids come from run_task() or schedule_task()"
            ) from None

    def new_cron(self, task_name: str, expression: str, payload: dict[str, Any]) -> str:
        """A cron whose first tick is pushed; returns its id."""
        cron_id = self.new_id()
        plan = cron_plan(expression)
        entry = self.push(plan.next_after(self.clock.now().astimezone(UTC)), CRON, cron_id)
        self.crons[cron_id] = Cron(cron_id, task_name, expression, payload, entry, plan)
        return cron_id

    def tick(
        self, entry: Entry, tasks: Mapping[str, TaskOptions], defer: Callable[[datetime], datetime] | None
    ) -> Run | None:
        """A cron's tick fires: its next tick is pushed (after ``defer``, if
        given: ticks missed during an outage fire once, at its end), and the run
        to queue is returned (None when the cron is gone or its task not
        registered here)."""
        cron = self.crons.get(entry.ref)
        if cron is None or cron.entry is not entry:
            return None
        after = entry.due if defer is None else defer(entry.due)
        cron.entry = self.push(cron.plan.next_after(after), CRON, cron.id)  # heap times are UTC
        options = tasks.get(cron.task_name)
        if options is None:
            return None
        return self.new_run(options, dict(cron.payload), entry.due, TaskState.QUEUED)

    # listings

    def cron_infos(self, task_name: str | None) -> list[CronInfo]:
        """The crons, of ``task_name`` only if given."""
        return [
            CronInfo(
                id=c.id,
                task_name=c.task_name,
                expression=c.expression,
                payload=copy_json(c.payload),
                next_run_at=c.entry.due,
            )
            for c in self.crons.values()
            if task_name is None or c.task_name == task_name
        ]

    def scheduled(self, task_name: str | None) -> list[TaskInfo]:
        """Schedules not yet due, soonest first."""
        pending = [
            r
            for r in self.runs.values()
            if r.state is TaskState.SCHEDULED and (task_name is None or r.options.name == task_name)
        ]
        pending.sort(key=lambda r: r.scheduled_at)
        return [r.info() for r in pending]

    def fired(self, task_name: str | None, states: frozenset[TaskState] | None, limit: int) -> list[TaskInfo]:
        """Runs (queued at least once), newest first, at most ``limit``.

        Newest by due time (``scheduled_at``), as Hatchet's listing sorts: a
        schedule created early but due late comes before a run queued since.
        Runs due at the same instant: the one created last first."""
        found = [
            r
            for r in reversed(self.runs.values())
            if r.fired
            and (task_name is None or r.options.name == task_name)
            and (states is None or r.state in states)
        ]
        found.sort(key=lambda r: r.scheduled_at, reverse=True)  # stable: ties keep newest created first
        return [r.info() for r in found[:limit]]

    # what Faults uses

    def now(self) -> datetime:
        return self.clock.now()

    def wake(self) -> None:
        """Make the worker re-read the heap (an outage began or ended)."""
        self.wakeup.set()

    def running(self) -> list[str]:
        """Ids of the runs with an attempt in flight (durable sleeps included)."""
        return [
            run.id
            for run in self.runs.values()
            if run.state is TaskState.RUNNING and run.task is not None and not run.task.done()
        ]

    def requeue(self, run_id: str, delay: float) -> None:
        """The run's attempt is lost: it is queued again after ``delay`` seconds."""
        run = self.runs[run_id]
        run.state = TaskState.QUEUED
        if run.entry is not None:
            run.entry.dead = True
        run.entry = self.push(self.clock.now() + timedelta(seconds=delay), DUE, run)

    async def cancel_attempts(self, run_ids: list[str]) -> None:
        """Cancel these runs' attempts in flight and wait until they have
        stopped, at most ``CANCEL_WAIT_SECONDS`` (a task that swallows its
        cancellation is left behind, not waited for forever)."""
        tasks = [t for t in (self.runs[i].task for i in run_ids) if t is not None]
        for task in tasks:
            self.cancel_attempt(task)
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_SECONDS)

    def is_final(self, run_id: str) -> bool:
        """Whether the run has finished (or is unknown)."""
        run = self.runs.get(run_id)
        return run is None or run.state.is_final
