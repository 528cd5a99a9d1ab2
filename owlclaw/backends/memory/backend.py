"""The in-memory scheduler: one heap of due times, state per instance."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.memory import guards
from owlclaw.backends.memory.attempts import Attempts
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.backends.memory.faults import Faults
from owlclaw.backends.memory.mimic import Mimic
from owlclaw.backends.memory.ready import ReadyQueue
from owlclaw.backends.memory.retention import Retention
from owlclaw.backends.memory.runs import CRON, DUE, SCHEDULE, TIMEOUT, WAKE, Run, Timetable
from owlclaw.backends.memory.schedules import ScheduleHooks, Schedules
from owlclaw.backends.memory.virtual import VirtualTime
from owlclaw.scheduler.clock import Clock, SystemClock
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import TaskNotFoundError, WaitTimeoutError
from owlclaw.scheduler.kit import (
    BaseScheduler,
    SyncExecutor,
)
from owlclaw.scheduler.kit.sync import check_not_in_sync_task
from owlclaw.scheduler.models import CronInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.protocol import Capabilities

__all__ = ["MemoryScheduler"]

log = logging.getLogger("owlclaw.scheduler.memory")


class MemoryScheduler(Attempts, VirtualTime, ScheduleHooks, BaseScheduler):
    """Runs tasks in this process, with the engine's states, errors and JSON rules.

    ``MemoryScheduler()`` uses the real clock. For tests pass
    ``clock=VirtualClock(start=...)`` and drive time with ``advance()``.
    """

    backend_name = "memory"

    @property
    def capabilities(self) -> Capabilities:
        """Runs in this event loop; virtual time when its clock is virtual."""
        virtual = self.clock.is_virtual
        return Capabilities(
            in_process=True, virtual_time=virtual, diagnose=True, start_worker=True, schedules=True
        )

    def __init__(self, config: MemoryConfig | None = None, *, clock: Clock | None = None) -> None:
        super().__init__()
        self.config = config or MemoryConfig()
        self.clock: Clock = clock or SystemClock()
        self._book = Timetable(self.clock)
        self._book.attempt_ended = self._attempt_done
        self._mimic = Mimic(self.config, self._book, self._finish)  # Hatchet's ways, if configured
        self._ready = ReadyQueue(
            self._book.seq, self.config, self._mimic.queued if self._mimic.hatchet else None
        )
        self._declared_crons: set[str] = set()
        self._schedules = Schedules(self)  # add_schedule's: owlclaw.backends.memory.schedules
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._running: set[asyncio.Task[None]] = set()  # attempts in flight
        self._busy = 0  # running attempts not parked in a durable sleep
        self._progress = asyncio.Event()
        self.faults = Faults(self._book)  # injected faults: see owlclaw.backends.memory.faults
        self._runaway = guards.RunawayGuard()
        self._retention = Retention.from_config(self.config, virtual_clock=self.clock.is_virtual)

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
            self._book.wakeup = asyncio.Event()
            self._progress = asyncio.Event()
        self._connected = True
        for options in self._tasks.values():
            if options.cron and options.name not in self._declared_crons:
                self._declared_crons.add(options.name)
                if options.timezone == "UTC":
                    self._book.new_cron(options.name, options.cron, {})
                else:
                    self._schedules.declared(options)

    async def disconnect(self) -> None:
        if self._worker is not None:
            await self.stop_worker()
        self._connected = False

    def _check_connected(self, operation: str) -> None:
        if not self._connected:  # the base's check (raises), without a super() per call
            super()._check_connected(operation)
        self.faults.before_call(operation)

    def _now(self) -> datetime:
        return self.clock.now()

    # the hooks of BaseScheduler

    async def _submit(self, options: TaskOptions, payload: dict[str, Any], **when: Any) -> str:
        return self._mimic.child(when["due"], lambda: self._new_run(options, payload, **when))

    def _new_run(
        self,
        options: TaskOptions,
        payload: dict[str, Any],
        *,
        due: datetime | None,
        priority: int,
        metadata: dict[str, str],
    ) -> str:
        if due is None:
            run = self._book.new_run(options, payload, self.clock.now(), TaskState.QUEUED)
        else:
            run = self._book.new_run(options, payload, due, TaskState.SCHEDULED)
        run.priority = priority
        run.trace = metadata
        if self.clock.is_virtual:
            try:
                self._runaway.submitted(run, due, self.clock.now())
            except Exception:
                del self._book.runs[run.id]
                raise
        if due is None:
            self._enqueue(run)
        else:
            run.entry = self._book.push(due, DUE, run)
            if self._mimic.holds(due):
                self._ready.reserve(run)
        return run.id

    async def _add_cron(self, options: TaskOptions, expression: str, payload: dict[str, Any]) -> str:
        return self._book.new_cron(options.name, expression, payload)

    async def _remove_cron(self, cron_id: str) -> None:
        cron = self._book.crons.pop(cron_id, None)
        if cron is None:
            raise TaskNotFoundError(f"no cron with id {cron_id!r}; list them with list_crons()")
        cron.entry.dead = True

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        return self._book.cron_infos(task_name)

    async def _cancel(self, task_id: str) -> bool:
        return self._cancel_run(self._book.run(task_id))

    def _cancel_run(self, run: Run) -> bool:
        if run.state.is_final:
            return False
        if run.entry is not None:
            run.entry.dead = True
            run.entry = None
        if run.holds_slot:
            self._ready.release(run)
        run.cancel()
        if run.task is not None and not run.task.done():
            self._mimic.cancel(run)  # at once, or after Hatchet's cooperative grace
        self._finish(run, TaskState.CANCELLED)
        return True

    async def get_task_status(self, task_id: str) -> TaskInfo:  # the base's, in one frame not two
        check_not_in_sync_task(self)  # the base's _enter and _check_connected, frames less
        if not self._connected:
            self._check_connected("get_task_status")  # raises
        if self.faults.calls_fail:
            self.faults.before_call("get_task_status")
        if self._retention.max_age is not None:  # the run-count limit is kept as runs finish
            self._retention.prune(self._book.runs, self.clock.now())
        run = self._book.runs.get(task_id) if type(task_id) is str else None
        return (run or self._book.run(task_id)).info()  # Timetable.run raises TaskNotFoundError

    async def _list_scheduled(self, task_name: str | None) -> list[TaskInfo]:
        return self._book.scheduled(task_name)

    async def _list_runs(
        self, task_name: str | None, *, states: frozenset[TaskState] | None, limit: int
    ) -> list[TaskInfo]:
        self._retention.prune(self._book.runs, self.clock.now())
        return self._mimic.listed(self._book.fired(task_name, states, limit), self.clock.now())

    async def _wait(self, task_id: str, timeout: float) -> TaskInfo:
        run = self._book.run(task_id)
        clock = self._moving_clock()
        if clock is not None:
            deadline = clock.now() + timedelta(seconds=timeout)
            await self._settle()
            while not run.state.is_final:
                nxt = self._next_due()
                if nxt is None or nxt > deadline:
                    break
                clock.move_to(nxt)
                await self._settle()
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.done.wait(), timeout)
        self._runaway.check()
        if not run.state.is_final:
            hint = guards.wait_hint(worker=self._worker is not None, virtual=clock is not None)
            raise WaitTimeoutError(f"task {task_id} is still {run.state.value} after {timeout:g}s{hint}")
        return run.info()

    async def diagnose(self) -> list[Finding]:
        """Checks for ``owlclaw-scheduler doctor``."""
        return guards.diagnose(running=self._worker is not None)

    # worker

    async def start_worker(self) -> None:
        self._check_connected("start_worker")
        if self._worker is not None:
            return
        self._accepting = True
        self._sync = SyncExecutor(self.config.slots, "owlclaw-memory-sync")  # sync tasks: a thread per slot
        self._worker = asyncio.create_task(self._work(), name="owlclaw-memory-worker")
        self._schedules.fleet_up()  # what fell due while no worker ran
        self._book.wake()
        await asyncio.sleep(0)

    async def stop_worker(self) -> None:
        """Stop taking runs; running attempts get ``config.shutdown_grace_seconds``
        to finish, then they (and durable sleepers, at once) are cancelled and
        their runs queued again."""
        if self._worker is None:
            return
        # no cancel(): on Python 3.11 a cancelled asyncio.wait_for can hang
        worker, self._worker = self._worker, None
        self._accepting = False
        self._book.wake()
        await worker
        await guards.stop_attempts(self._book, self._running, self.config.shutdown_grace_seconds)
        await self._sync.aclose(self.config.shutdown_grace_seconds)

    async def _work(self) -> None:
        while self._accepting:
            self._book.wakeup.clear()
            self._fire_due()
            nxt = self._next_due()
            delay: float | None = None
            if nxt is not None and not self.clock.is_virtual:
                delay = (nxt - self.clock.now()).total_seconds()
                if delay <= 0:
                    await asyncio.sleep(0)
                    continue
            waiter = asyncio.ensure_future(self._book.wakeup.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    async def _settle(self) -> None:
        """Return once what is due now has run (or is sleeping).

        :raises RunawayTaskError: a task keeps queueing runs at this instant.
        :raises WaitTimeoutError: no attempt made progress for ``settle_timeout_seconds``.
        """
        yielded = False
        runaway = self._runaway
        while True:
            if runaway.error is not None:
                runaway.check()
            self._progress.clear()
            fired = self._fire_due()
            # after one yield an idle state needs no second one (a turn per run saved)
            if yielded and not fired and self._busy == 0 and self._idle():
                return
            await asyncio.sleep(0)
            yielded = True
            if self._busy == 0 and self._idle():
                if runaway.error is not None:  # attempts now end in this turn: one may have run away
                    runaway.check()
                return
            if self._busy == 0:
                continue
            await asyncio.sleep(0)  # an attempt that has just ended reports in its done callback
            if not self._progress.is_set():
                await guards.await_progress(self._progress, self.config.settle_timeout_seconds, self._book)

    def _idle(self) -> bool:
        """Nothing due now, and nothing queued that could start."""
        heap, now = self._book.heap, self.clock.now()
        # the raw top first: dead entries and outages only make the next due time later
        if heap and heap[0][0] <= now and (nxt := self._next_due()) is not None and nxt <= now:
            return False
        return not (self._accepting and self._ready.startable())

    # the heap

    def _next_due(self, *, skip_crons: bool = False) -> datetime | None:
        nxt = self._book.next_due(skip_crons=skip_crons)
        if nxt is None or not self.faults.calls_fail:  # no outage planned: nothing deferred
            return nxt
        return self.faults.defer(nxt)

    def _fire_due(self) -> bool:
        """Fire what is due now; whether anything fired (woken sleepers need a turn)."""
        now = self.clock.now()
        if self.faults.calls_fail and self.faults.engine_down(now):
            return False
        heap = self._book.heap
        fired = False
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry.dead:
                continue
            entry.dead = fired = True  # fired (Timetable.next_due's other heap drops it)
            if entry.kind == DUE:
                run: Run = entry.ref
                run.entry = None
                if run.holds_slot:
                    self._ready.release(run)
                run.state = TaskState.QUEUED
                self._queue(run)  # started below, with the rest
            elif entry.kind == CRON:
                defer = self.faults.defer if self.faults.calls_fail else None  # None: no outage planned
                if (ticked := self._book.tick(entry, self._tasks, defer)) is not None:
                    self._queue(ticked)
            elif entry.kind == WAKE:
                future: asyncio.Future[None] = entry.ref
                if not future.done():
                    future.set_result(None)
            elif entry.kind == TIMEOUT:
                self._time_out(*entry.ref)
            elif entry.kind == SCHEDULE:
                self._schedules.fire(entry)
        self._start_ready()
        return fired

    # runs

    def _queue(self, run: Run) -> None:
        run.fired = True
        self._ready.push(run)

    def _enqueue(self, run: Run) -> None:
        self._queue(run)
        self._start_ready()

    def _start_ready(self) -> None:
        if not self._accepting or not self._ready:
            return
        create_task = asyncio.get_running_loop().create_task  # asyncio.create_task, a frame less
        mimic = self._mimic
        for run in self._ready.take():
            run.state = TaskState.RUNNING
            run.attempts += 1
            # under mimic="hatchet" every attempt sets started_at again (Mimic.started)
            if (mimic.hatchet and mimic.started(run)) or run.started_at is None:
                run.started_at = self.clock.now()
            self._busy += 1
            run.task = create_task(self._reported(run))
            self._running.add(run.task)
            self._ready.started(run, run.task)

    def _retry(self, run: Run, delay: float) -> None:
        """Queue the next attempt after a failed one, ``delay`` seconds on."""
        run.state = TaskState.QUEUED
        if delay > 0:
            run.entry = self._book.push(self.clock.now() + timedelta(seconds=delay), DUE, run)
        else:
            self._enqueue(run)

    def _finish(self, run: Run, state: TaskState) -> None:
        run.state = state
        run.finished_at = self.clock.now()
        if state is TaskState.CANCELLED and run.error is None:
            run.error = "cancelled"
        if state is not TaskState.FAILED and state is not TaskState.CANCELLED:
            run.error = None
        run.mark_done()
        if run.occurrence is not None:
            self._schedules.ended(run)  # overlap buffer_one: the buffered occurrence starts
        self._progress.set()
        self._retention.finished(run.id, run.finished_at, self._book.runs)
