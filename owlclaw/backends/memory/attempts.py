"""One attempt of a memory run: its asyncio task's body, its context, its
timeout on the scheduler's clock, its durable sleeps, and what follows it (a
part of ``MemoryScheduler``, which provides what is declared here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from owlclaw.backends.memory import guards
from owlclaw.backends.memory.faults import Faults
from owlclaw.backends.memory.mimic import Mimic
from owlclaw.backends.memory.ready import ReadyQueue
from owlclaw.backends.memory.runs import TIMEOUT, WAKE, Run, Timetable
from owlclaw.scheduler.clock import Clock
from owlclaw.scheduler.kit import (
    SyncExecutor,
    hold_sync_threads,
    make_context,
    release_sync_threads,
    run_attempt,
)
from owlclaw.scheduler.kit.attempts import AttemptOutcome, uses_threads
from owlclaw.scheduler.models import TaskState

if TYPE_CHECKING:
    from owlclaw.scheduler.protocol import Scheduler

__all__ = ["Attempts"]


class Attempts:
    """The attempts of ``MemoryScheduler``'s runs."""

    clock: Clock
    faults: Faults
    _book: Timetable
    _ready: ReadyQueue
    _mimic: Mimic
    _sync: SyncExecutor
    _runaway: guards.RunawayGuard
    _running: set[asyncio.Task[None]]
    _busy: int
    _progress: asyncio.Event

    def _start_ready(self) -> None:
        raise NotImplementedError

    def _retry(self, run: Run, delay: float) -> None:
        raise NotImplementedError

    def _finish(self, run: Run, state: TaskState) -> None:
        raise NotImplementedError

    async def _reported(self, run: Run) -> None:
        """One attempt of ``run``, reported as it returns (no loop turn for a
        done callback). A sync attempt cut off keeps its slot until its thread
        returns (``kit.sync.hold_sync_threads``)."""
        task = run.task  # set by _start_ready before this runs
        assert task is not None
        held = hold_sync_threads() if uses_threads(run.options) else None
        try:
            try:
                self._attempt_ended(run, await self._attempt(run))
            finally:
                if held is not None and (pending := release_sync_threads(held)) is not None:
                    await pending
        finally:
            # (a task cancelled before its first step runs no finally: Timetable.cancel_attempt)
            self._attempt_done(task)
            if run.task is task:
                # a done task and its coroutine kept by every retained run made the
                # garbage collector's full passes several times longer
                run.task = None

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        if task not in self._running:
            return  # reported already
        self._running.remove(task)
        self._ready.ended(task)
        self._busy -= 1
        self._progress.set()
        self._start_ready()

    def _attempt(self, run: Run) -> Coroutine[Any, Any, AttemptOutcome]:
        """The next attempt of ``run``: ``run_attempt``'s coroutine, for the caller to await."""
        guards.CURRENT_RUN.set(run)
        options, attempt = run.options, run.attempts
        ctx = make_context(
            options,
            task_id=run.id,
            attempt=attempt,
            scheduler=cast("Scheduler", self),  # the MemoryScheduler this is a part of
            durable_sleep=(lambda seconds: self._durable_sleep(run, seconds)) if options.durable else None,
            cancel_event=run,
        )
        if (occurrence := run.occurrence) is not None:
            ctx.scheduled_for, ctx.occurrence_id = occurrence.nominal, occurrence.id
        wrap = options.timeout is not None or self.faults.planned  # else the task's call as it is
        through = (lambda call: self._call(run, attempt, call)) if wrap else None
        return run_attempt(
            options,
            run.payload,
            ctx,
            trace=run.trace,
            lateness=run.lateness() if attempt == 1 else None,
            timed_out=lambda: run.timed_out_attempt == attempt and run.state is TaskState.RUNNING,
            abandoned=run.left_running,  # cancelled or lost meanwhile: its error is no failure
            through=through,
            record=lambda failed: setattr(run, "error", failed.error),
            executor=self._sync,
        )

    def _attempt_ended(self, run: Run, outcome: AttemptOutcome) -> None:
        """What follows an attempt: the run's end, or its retry."""
        if run.state is not TaskState.RUNNING:
            return  # cancelled meanwhile
        if outcome.succeeded:
            run.result = outcome.result
            self._finish(run, TaskState.SUCCEEDED)
        elif outcome.final:
            self._finish(run, TaskState.FAILED)
        else:
            delay = self._mimic.retry_delay(run.options, outcome.attempt, outcome.retry_delay or 0.0)
            self._retry(run, delay)

    async def _call(self, run: Run, attempt: int, call: Awaitable[Any]) -> Any:
        """The task's call, timed out on the scheduler's clock, through the
        injected faults."""
        timeout_entry, real_timer = None, None
        if run.options.timeout is not None:
            due = self.clock.now() + timedelta(seconds=run.options.timeout)
            timeout_entry = self._book.push(due, TIMEOUT, (run, attempt))
            if self.clock.is_virtual:
                # Work that takes real time times out in real time too.
                real_timer = asyncio.get_running_loop().call_later(
                    run.options.timeout, self._time_out, run, attempt
                )
        try:
            if self.faults.planned:
                return await self.faults.execute(run.id, run.options.name, call)
            return await call
        finally:
            if timeout_entry is not None:
                timeout_entry.dead = True
            if real_timer is not None:
                real_timer.cancel()

    def _time_out(self, run: Run, attempt: int) -> None:
        if run.task is not None and run.attempts == attempt and not run.task.done():
            run.timed_out_attempt = attempt
            self._book.cancel_attempt(run.task)

    async def _durable_sleep(self, run: Run, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = self.clock.now() + timedelta(seconds=max(seconds, 0.0))
        if self.clock.is_virtual:
            self._runaway.slept(run, wake, self.clock.now())
        entry = self._book.push(self.faults.wake_time(run.id, run.attempts, wake), WAKE, future)
        self._busy -= 1
        run.sleeping = True
        self._progress.set()
        try:
            await future
        finally:
            entry.dead = True
            run.sleeping = False
            self._busy += 1
