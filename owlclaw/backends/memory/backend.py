"""The in-memory scheduler: one heap of due times, state per instance."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.backends.memory.faults import Faults
from owlclaw.scheduler.base import (
    BaseScheduler,
    check_payload,
    describe_error,
    execute_attempt,
    json_roundtrip,
    log_attempt_failure,
    resolve_due_time,
    run_on_failure,
    run_priority,
)
from owlclaw.scheduler.clock import Clock, SystemClock, VirtualClock
from owlclaw.scheduler.cron import next_fire_time, normalize_cron
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import (
    NotSupportedError,
    SchedulerConnectionError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from owlclaw.scheduler.models import CronInfo, TaskContext, TaskFailure, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability import current_metadata, traced_call
from owlclaw.scheduler.protocol import Capabilities

__all__ = ["MemoryScheduler"]

log = logging.getLogger("owlclaw.scheduler.memory")

# What a heap entry does when its time comes.
_DUE = "due"  # a run leaves SCHEDULED (or its retry delay) and is queued
_CRON = "cron"  # a cron ticks: a new run is queued, the next tick is pushed
_WAKE = "wake"  # a durable sleep ends
_TIMEOUT = "timeout"  # an attempt has run too long

_VIRTUAL_YEAR = 365 * 24 * 3600.0


@dataclass(eq=False)
class _Entry:
    due: datetime
    seq: int
    kind: str
    ref: Any
    dead: bool = False

    def __lt__(self, other: _Entry) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


@dataclass(eq=False)
class _Run:
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
    entry: _Entry | None = None  # pending due/retry entry
    task: asyncio.Task[None] | None = None
    timed_out_attempt: int = 0
    fired: bool = False  # queued at least once: a run, not only a schedule
    trace: dict[str, str] = field(default_factory=dict)  # the scheduling call's trace context
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> TaskInfo:
        return TaskInfo(
            id=self.id,
            task_name=self.options.name,
            state=self.state,
            payload=json_roundtrip(self.payload, "payload"),
            scheduled_at=self.scheduled_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            attempts=self.attempts,
            result=json_roundtrip(self.result, "result"),
            error=self.error,
        )


@dataclass(eq=False)
class _Cron:
    id: str
    task_name: str
    expression: str
    payload: dict[str, Any]
    entry: _Entry


class MemoryScheduler(BaseScheduler):
    """Runs tasks in this process, with the engine's states, errors and JSON rules.

    ``MemoryScheduler()`` uses the real clock. For tests pass
    ``clock=VirtualClock(start=...)`` and drive time with ``advance()``.
    """

    backend_name = "memory"
    capabilities = property(
        lambda self: Capabilities(
            in_process=True,
            virtual_time=isinstance(self.clock, VirtualClock),
            diagnose=True,
            start_worker=True,
        )
    )

    def __init__(self, config: MemoryConfig | None = None, *, clock: Clock | None = None) -> None:
        super().__init__()
        self.config = config or MemoryConfig()
        self.clock: Clock = clock or SystemClock()
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._ready: list[tuple[int, int, _Run]] = []
        self._runs: dict[str, _Run] = {}
        self._crons: dict[str, _Cron] = {}
        self._declared_crons: set[str] = set()
        self._connected = False
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._running: set[asyncio.Task[None]] = set()  # attempts in flight
        self._in_group: dict[tuple[str, str], int] = {}  # attempts in flight per concurrency group
        self._group_of: dict[asyncio.Task[None], tuple[str, str]] = {}
        self._busy = 0  # running attempts not parked in a durable sleep
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self.faults = Faults(self)  # injected faults: see owlclaw.backends.memory.faults

    @classmethod
    def from_config(cls, config: MemoryConfig) -> MemoryScheduler:
        return cls(config)

    def __repr__(self) -> str:
        return f"MemoryScheduler(clock={self.clock!r}, tasks={len(self._tasks)})"

    # connection

    async def connect(self) -> None:
        self.faults.before_call("connect")
        if self._worker is None:
            # bound to this event loop: a module-level scheduler may be
            # connected again under a new loop (one per test, one per CLI call)
            self._wakeup = asyncio.Event()
            self._progress = asyncio.Event()
        self._connected = True
        for options in self._tasks.values():
            if options.cron and options.name not in self._declared_crons:
                self._declared_crons.add(options.name)
                self._add_cron(options.name, options.cron, {})

    async def disconnect(self) -> None:
        if self._worker is not None:
            await self.stop_worker()
        self._connected = False

    def _require_connected(self, operation: str = "call the engine") -> None:
        if not self._connected:
            raise SchedulerConnectionError(
                "the scheduler is not connected: use `async with scheduler:` "
                "or `await scheduler.connect()` first"
            )
        self.faults.before_call(operation)

    # scheduling

    @traced_call("run_task")
    async def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        self._require_connected("run_task")
        options = self._options(task_name)
        prio = run_priority(options, priority)
        run = self._new_run(options, check_payload(payload), self.clock.now(), TaskState.QUEUED)
        run.priority = prio
        run.trace = current_metadata()
        self._enqueue(run)
        return run.id

    @traced_call("schedule_task")
    async def schedule_task(
        self,
        task_name: str,
        payload: Any = None,
        *,
        delay_seconds: float | None = None,
        at: datetime | None = None,
        priority: int | None = None,
    ) -> str:
        self._require_connected("schedule_task")
        due = resolve_due_time(self.clock.now(), delay_seconds, at)
        options = self._options(task_name)
        prio = run_priority(options, priority)
        run = self._new_run(options, check_payload(payload), due, TaskState.SCHEDULED)
        run.priority = prio
        run.trace = current_metadata()
        run.entry = self._push(due, _DUE, run)
        return run.id

    @traced_call("add_cron")
    async def add_cron(self, task_name: str, expression: str, payload: Any = None) -> str:
        self._require_connected("add_cron")
        expression = normalize_cron(expression)
        self._options(task_name)
        return self._add_cron(task_name, expression, check_payload(payload))

    async def remove_cron(self, cron_id: str) -> None:
        self._require_connected("remove_cron")
        cron = self._crons.pop(cron_id, None)
        if cron is None:
            raise TaskNotFoundError(f"no cron with id {cron_id!r}; list them with list_crons()")
        cron.entry.dead = True

    async def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        self._require_connected("list_crons")
        return [
            CronInfo(
                id=c.id,
                task_name=c.task_name,
                expression=c.expression,
                payload=json_roundtrip(c.payload, "payload"),
                next_run_at=c.entry.due,
            )
            for c in self._crons.values()
            if task_name is None or c.task_name == task_name
        ]

    @traced_call("cancel_task")
    async def cancel_task(self, task_id: str) -> bool:
        self._require_connected("cancel_task")
        run = self._run(task_id)
        if run.state.is_final:
            return False
        if run.entry is not None:
            run.entry.dead = True
            run.entry = None
        run.cancel_event.set()
        if run.task is not None and not run.task.done():
            run.task.cancel()
        self._finish(run, TaskState.CANCELLED)
        return True

    async def get_task_status(self, task_id: str) -> TaskInfo:
        self._require_connected("get_task_status")
        return self._run(task_id).info()

    async def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        self._require_connected("list_scheduled_tasks")
        pending = [
            r
            for r in self._runs.values()
            if r.state is TaskState.SCHEDULED and (task_name is None or r.options.name == task_name)
        ]
        pending.sort(key=lambda r: r.scheduled_at)
        return [r.info() for r in pending]

    async def list_tasks(
        self,
        task_name: str | None = None,
        *,
        states: Iterable[TaskState] | None = None,
        limit: int = 100,
    ) -> list[TaskInfo]:
        self._require_connected("list_tasks")
        wanted = set(states) if states is not None else None
        found = [
            r
            for r in reversed(self._runs.values())
            if r.fired
            and (task_name is None or r.options.name == task_name)
            and (wanted is None or r.state in wanted)
        ]
        return [r.info() for r in found[:limit]]

    async def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        self._require_connected("wait_for_task")
        run = self._run(task_id)
        if isinstance(self.clock, VirtualClock):
            deadline = self.clock.now() + timedelta(seconds=timeout)
            await self._settle()
            while not run.state.is_final:
                nxt = self._next_due()
                if nxt is None or nxt > deadline:
                    break
                self.clock.move_to(nxt)
                await self._settle()
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.done.wait(), timeout)
        if not run.state.is_final:
            raise WaitTimeoutError(
                f"task {task_id} is still {run.state.value} after {timeout:g}s"
                + ("" if self._worker else "; no worker is running: call start_worker()")
            )
        return run.info()

    # virtual time

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock forward, running everything that falls due
        (delays, crons, retries, durable sleeps) in due order; returns when
        those runs have finished or are sleeping.

        :raises NotSupportedError: the scheduler runs on the real clock.
        """
        clock = self._virtual_clock("advance()")
        if seconds < 0:
            raise ValueError(f"advance() takes seconds >= 0, got {seconds!r}")
        target = clock.now() + timedelta(seconds=seconds)
        await self._settle()
        while (nxt := self._next_due()) is not None and nxt <= target:
            clock.move_to(nxt)
            await self._settle()
        clock.move_to(target)
        await self._settle()

    async def run_until_idle(self, max_seconds: float = _VIRTUAL_YEAR) -> None:
        """Run until nothing is running, queued or waiting, crons aside.

        On a virtual clock time jumps from one due time to the next, for at
        most ``max_seconds`` of virtual time (a task that reschedules itself
        forever would otherwise never be idle). On the real clock it waits for
        what is due now to finish.
        """
        await self._settle()
        if not isinstance(self.clock, VirtualClock):
            return
        clock = self.clock
        deadline = clock.now() + timedelta(seconds=max_seconds)
        while (nxt := self._next_due(skip_crons=True)) is not None and nxt <= deadline:
            # crons that fall before it still fire, in order
            clock.move_to(self._next_due() or nxt)
            await self._settle()

    def _virtual_clock(self, what: str) -> VirtualClock:
        if not isinstance(self.clock, VirtualClock):
            raise NotSupportedError(
                f"{what} needs virtual time: MemoryScheduler(clock=VirtualClock(start=...))"
            )
        return self.clock

    async def diagnose(self) -> list[Finding]:
        """Checks for ``owlclaw-scheduler doctor``."""
        where = "running" if self._worker is not None else "started by start_worker()"
        return [
            Finding(
                "worker",
                "ok",
                f"tasks run inside the process that owns this scheduler (its worker is {where}); "
                "nothing outlives that process",
            )
        ]

    # worker

    async def start_worker(self) -> None:
        self._require_connected("start_worker")
        if self._worker is not None:
            return
        self._accepting = True
        self._worker = asyncio.create_task(self._work(), name="owlclaw-memory-worker")
        self._wakeup.set()
        await asyncio.sleep(0)

    async def stop_worker(self) -> None:
        if self._worker is None:
            return
        # no cancel(): on Python 3.11 a cancelled asyncio.wait_for can hang
        worker, self._worker = self._worker, None
        self._accepting = False
        self._wakeup.set()
        await worker
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _work(self) -> None:
        while self._accepting:
            self._wakeup.clear()
            self._fire_due()
            nxt = self._next_due()
            delay: float | None = None
            if nxt is not None and not isinstance(self.clock, VirtualClock):
                delay = (nxt - self.clock.now()).total_seconds()
                if delay <= 0:
                    await asyncio.sleep(0)
                    continue
            waiter = asyncio.ensure_future(self._wakeup.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    async def _settle(self) -> None:
        """Return once what is due now has run (or is sleeping)."""
        while True:
            self._progress.clear()
            self._fire_due()
            await asyncio.sleep(0)
            nxt = self._next_due()
            due_now = nxt is not None and nxt <= self.clock.now()
            startable = self._accepting and len(self._running) < self.config.slots and self._startable()
            if self._busy == 0 and not due_now and not startable:
                return
            if self._busy == 0:
                continue
            await self._progress.wait()

    # the heap

    def _push(self, due: datetime, kind: str, ref: Any) -> _Entry:
        entry = _Entry(due, next(self._seq), kind, ref)
        heapq.heappush(self._heap, entry)
        self._wakeup.set()
        return entry

    def _next_due(self, *, skip_crons: bool = False) -> datetime | None:
        while self._heap and self._heap[0].dead:
            heapq.heappop(self._heap)
        if not skip_crons:
            return self.faults.defer(self._heap[0].due) if self._heap else None
        live = [e.due for e in self._heap if not e.dead and e.kind != _CRON]
        return self.faults.defer(min(live)) if live else None

    def _fire_due(self) -> None:
        now = self.clock.now()
        if self.faults.engine_down(now):
            return
        while self._heap and self._heap[0].due <= now:
            entry = heapq.heappop(self._heap)
            if entry.dead:
                continue
            if entry.kind == _DUE:
                run: _Run = entry.ref
                run.entry = None
                run.state = TaskState.QUEUED
                self._enqueue(run)
            elif entry.kind == _CRON:
                self._tick(entry)
            elif entry.kind == _WAKE:
                future: asyncio.Future[None] = entry.ref
                if not future.done():
                    future.set_result(None)
            elif entry.kind == _TIMEOUT:
                self._time_out(*entry.ref)
        self._start_ready()

    # runs

    def _new_run(self, options: TaskOptions, payload: dict[str, Any], at: datetime, state: TaskState) -> _Run:
        run = _Run(
            id=str(uuid.uuid4()),
            options=options,
            payload=payload,
            state=state,
            scheduled_at=at,
            priority=options.priority,
        )
        self._runs[run.id] = run
        return run

    def _run(self, task_id: str) -> _Run:
        try:
            return self._runs[task_id]
        except (KeyError, TypeError):
            raise TaskNotFoundError(
                f"no task with id {task_id!r}; ids come from run_task() or schedule_task()"
            ) from None

    def _enqueue(self, run: _Run) -> None:
        run.fired = True
        # Higher priority first, then first come first served.
        heapq.heappush(self._ready, (-run.priority, next(self._seq), run))
        self._start_ready()
        self._wakeup.set()

    def _group(self, run: _Run) -> tuple[str, str] | None:
        group = run.options.concurrency_group(run.payload)
        return None if group is None else (run.options.name, group)

    def _at_limit(self, run: _Run) -> bool:
        group = self._group(run)
        limit = run.options.concurrency
        return group is not None and limit is not None and self._in_group.get(group, 0) >= limit

    def _startable(self) -> bool:
        return any(r.state is TaskState.QUEUED and not self._at_limit(r) for _, _, r in self._ready)

    def _start_ready(self) -> None:
        held: list[tuple[int, int, _Run]] = []  # over their concurrency limit: they keep their place
        while self._accepting and self._ready and len(self._running) < self.config.slots:
            item = heapq.heappop(self._ready)
            run = item[2]
            if run.state is not TaskState.QUEUED:
                continue
            if self._at_limit(run):
                held.append(item)
                continue
            run.state = TaskState.RUNNING
            run.attempts += 1
            if run.started_at is None:
                run.started_at = self.clock.now()
            self._busy += 1
            run.task = asyncio.create_task(self._attempt(run), name=f"owlclaw-run-{run.id}")
            self._running.add(run.task)
            if (group := self._group(run)) is not None:
                self._in_group[group] = self._in_group.get(group, 0) + 1
                self._group_of[run.task] = group
            # A callback, not a finally: a task cancelled before it starts runs no finally.
            run.task.add_done_callback(self._attempt_done)
        for item in held:
            heapq.heappush(self._ready, item)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if (group := self._group_of.pop(task, None)) is not None:
            self._in_group[group] -= 1
        self._busy -= 1
        self._progress.set()
        self._start_ready()

    async def _attempt(self, run: _Run) -> None:
        options, attempt = run.options, run.attempts
        ctx = TaskContext(
            task_id=run.id,
            task_name=options.name,
            attempt=attempt,
            scheduler=self,
            durable_sleep=(lambda s: self._durable_sleep(run, s)) if options.durable else None,
            cancel_event=run.cancel_event,
        )
        timeout_entry = None
        real_timer = None
        if options.timeout is not None:
            due = self.clock.now() + timedelta(seconds=options.timeout)
            timeout_entry = self._push(due, _TIMEOUT, (run, attempt))
            if isinstance(self.clock, VirtualClock):
                # Work that takes real time times out in real time too.
                real_timer = asyncio.get_running_loop().call_later(
                    options.timeout, self._time_out, run, attempt
                )
        error: str | None = None
        retryable = True
        try:
            result = await self.faults.execute(
                run,
                execute_attempt(options, run.payload, ctx, trace=run.trace, lateness=_lateness(run, attempt)),
            )
        except asyncio.CancelledError:
            if run.timed_out_attempt != attempt:
                raise
            error = f"TimeoutError: task {options.name!r} exceeded its timeout of {options.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - a task's failure is data
            error = describe_error(exc)
            retryable = options.should_retry(exc)
        finally:
            if timeout_entry is not None:
                timeout_entry.dead = True
            if real_timer is not None:
                real_timer.cancel()
        if run.state is not TaskState.RUNNING:
            return  # cancelled meanwhile
        if error is None:
            run.result = result
            self._finish(run, TaskState.SUCCEEDED)
            return
        if self._retry(run, attempt, error, retryable):
            return
        failure = TaskFailure(options.name, run.id, json_roundtrip(run.payload, "payload"), error, attempt)
        await run_on_failure(options, failure)
        if run.state is TaskState.RUNNING:
            self._finish(run, TaskState.FAILED)

    def _time_out(self, run: _Run, attempt: int) -> None:
        if run.task is not None and run.attempts == attempt and not run.task.done():
            run.timed_out_attempt = attempt
            run.task.cancel()

    def _retry(self, run: _Run, attempt: int, error: str, retryable: bool) -> bool:
        """Queue the next attempt after a failed one; False if that was the last."""
        options = run.options
        run.error = error
        final = attempt > options.retries or not retryable
        log_attempt_failure(options, run.id, attempt, error, final=final)
        if final:
            return False
        run.state = TaskState.QUEUED
        delay = options.retry_delay(attempt)
        if delay > 0:
            run.entry = self._push(self.clock.now() + timedelta(seconds=delay), _DUE, run)
        else:
            self._enqueue(run)
        return True

    def _finish(self, run: _Run, state: TaskState) -> None:
        run.state = state
        run.finished_at = self.clock.now()
        if state is TaskState.CANCELLED and run.error is None:
            run.error = "cancelled"
        if state is not TaskState.FAILED and state is not TaskState.CANCELLED:
            run.error = None
        run.done.set()
        self._progress.set()

    async def _durable_sleep(self, run: _Run, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        due = self.faults.wake_time(run, self.clock.now() + timedelta(seconds=max(seconds, 0.0)))
        entry = self._push(due, _WAKE, future)
        self._busy -= 1
        self._progress.set()
        try:
            await future
        finally:
            entry.dead = True
            self._busy += 1

    # crons

    def _add_cron(self, task_name: str, expression: str, payload: dict[str, Any]) -> str:
        cron_id = str(uuid.uuid4())
        entry = self._push(next_fire_time(expression, self.clock.now()), _CRON, cron_id)
        self._crons[cron_id] = _Cron(cron_id, task_name, expression, payload, entry)
        return cron_id

    def _tick(self, entry: _Entry) -> None:
        cron = self._crons.get(entry.ref)
        if cron is None or cron.entry is not entry:
            return
        options = self._tasks.get(cron.task_name)
        if options is not None:
            run = self._new_run(options, dict(cron.payload), entry.due, TaskState.QUEUED)
            self._enqueue(run)
        # ticks missed during an outage fire once, at its end
        cron.entry = self._push(next_fire_time(cron.expression, self.faults.defer(entry.due)), _CRON, cron.id)


def _lateness(run: _Run, attempt: int) -> float | None:
    """Seconds from due time to the first attempt's start (None for retries)."""
    if attempt != 1 or run.started_at is None:
        return None
    return (run.started_at - run.scheduled_at).total_seconds()
