"""Sync task functions (owlclaw.scheduler.kit.sync): the worker's bounded
threads, a cut-off attempt's slot, the blocking facade, exits, shutdown."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.scheduler.errors import NotSupportedError
from owlclaw.scheduler.kit import BaseScheduler, SyncExecutor, make_context, make_options, run_attempt
from owlclaw.scheduler.kit.sync import task_exit
from owlclaw.scheduler.models import TaskContext, TaskFailure, TaskState
from owlclaw.scheduler.polling import poll_until


def test_the_executor_runs_at_most_its_threads_at_once() -> None:
    executor = SyncExecutor(2, "test-sync")
    release = threading.Event()
    running: list[str] = []
    lock = threading.Lock()

    def block() -> str:
        with lock:
            running.append(threading.current_thread().name)
        release.wait(10)
        return threading.current_thread().name

    futures = [executor.submit(block) for _ in range(3)]
    deadline = time.monotonic() + 5
    while len(running) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(running) == 2, running  # the third waits for a thread
    assert executor.busy == 3
    release.set()
    names = {f.result(5) for f in futures}
    assert names <= {"test-sync-0", "test-sync-1"}
    executor.shutdown(timeout=5)
    assert executor.busy == 0
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(block)


def test_shutdown_leaves_a_hung_thread_behind_within_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    executor = SyncExecutor(1, "test-hung")
    never = threading.Event()
    executor.submit(never.wait, 30)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="owlclaw.scheduler.runs"):
        executor.shutdown(timeout=0.2)
    assert time.monotonic() - started < 5
    assert "still running at shutdown" in caplog.text
    never.set()


def test_system_exit_becomes_a_failure_of_the_same_name() -> None:
    error = task_exit(SystemExit(3))
    assert isinstance(error, Exception) and type(error).__name__ == "SystemExit"
    assert str(error) == "3" and isinstance(error.__cause__, SystemExit)
    interrupt = KeyboardInterrupt()
    assert task_exit(interrupt) is interrupt


async def test_sync_scheduler_on_the_event_loop_raises_rather_than_deadlock() -> None:
    options = make_options(lambda payload, ctx: None, "t")
    ctx = make_context(options, task_id="run-1", attempt=1, scheduler=BaseScheduler())
    with pytest.raises(NotSupportedError, match=r"await ctx\.scheduler\.run_task"):
        ctx.sync_scheduler.run_task("t")


def test_sync_scheduler_needs_a_worker_context() -> None:
    ctx = TaskContext(task_id="x", task_name="t", attempt=1, scheduler=BaseScheduler())
    with pytest.raises(NotSupportedError, match="worker"):
        _ = ctx.sync_scheduler


async def test_a_sync_on_failure_runs_on_the_executor_and_its_exit_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def on_failure(failure: TaskFailure) -> None:
        seen.append(threading.current_thread().name)
        sys.exit(5)

    def fail(payload: Any, ctx: TaskContext) -> None:
        raise ValueError("boom")

    options = make_options(fail, "t", on_failure=on_failure)
    executor = SyncExecutor(1, "test-cb")
    ctx = make_context(options, task_id="run-1", attempt=1, scheduler=BaseScheduler())
    with caplog.at_level(logging.ERROR, logger="owlclaw.scheduler.runs"):
        outcome = await run_attempt(options, {}, ctx, executor=executor)
    assert outcome.error == "ValueError: boom" and outcome.final
    assert seen == ["test-cb-0"]
    assert "SystemExit: 5" in caplog.text
    executor.shutdown(timeout=5)


async def test_a_timed_out_sync_attempt_keeps_its_slot_until_its_thread_returns() -> None:
    # one slot; the first task ignores ctx.cancelled for a while after its timeout
    s = MemoryScheduler(MemoryConfig(slots=1))
    release = threading.Event()

    @s.task(name="stubborn", timeout=0.2)
    def stubborn(payload: Any, ctx: TaskContext) -> str:
        release.wait(10)
        return "late"

    @s.task(name="echo")
    def echo(payload: Any, ctx: TaskContext) -> str:
        return threading.current_thread().name

    async with s:
        await s.start_worker()
        first = await s.run_task("stubborn")
        second = await s.run_task("echo")
        failed = await s.wait_for_task(first, 10)
        assert failed.state is TaskState.FAILED and failed.error and failed.error.startswith("TimeoutError")
        assert (await s.get_task_status(second)).state is TaskState.QUEUED  # the thread still holds the slot
        release.set()
        done = await s.wait_for_task(second, 10)
        assert done.state is TaskState.SUCCEEDED and done.result == "owlclaw-memory-sync-0"
        assert (await s.get_task_status(first)).result is None  # the late result is discarded


async def test_stop_worker_is_bounded_with_a_hung_sync_task() -> None:
    s = MemoryScheduler(MemoryConfig(slots=2, shutdown_grace_seconds=0.2))
    never = threading.Event()

    @s.task(name="hang")
    def hang(payload: Any, ctx: TaskContext) -> None:
        never.wait(30)  # ignores ctx.cancelled

    async with s:
        await s.start_worker()
        run_id = await s.run_task("hang")
        await poll_until(lambda: s.get_task_status(run_id), lambda i: i.state is TaskState.RUNNING, timeout=5)
        started = time.monotonic()
        await s.stop_worker()
        assert time.monotonic() - started < 5
    never.set()
