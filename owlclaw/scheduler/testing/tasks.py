"""The tasks the conformance suite runs, declared the same way on every backend.

They report only through results, errors and states, never through shared
memory, so they behave the same when a worker runs in another process.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, cast

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import NonRetryableError
from owlclaw.scheduler.models import TaskContext, TaskFailure
from owlclaw.scheduler.protocol import Scheduler, VirtualClockScheduler

__all__ = ["DECLARED_CRON", "EXPONENTIAL_BACKOFF", "FIXED_BACKOFF", "register_conformance_tasks"]

DECLARED_CRON = "0 0 1 1 *"  # once a year: registered, never fires during a test
FIXED_BACKOFF = 2  # conf_fixed_backoff waits this long before each of its 2 retries
EXPONENTIAL_BACKOFF = (2.0, 3.0)  # conf_exponential_backoff: base 2, capped at 3 s

_ERRORS: dict[str, type[Exception]] = {
    "connection": ConnectionError,
    "refused": ConnectionRefusedError,
    "value": ValueError,
    "nonretryable": NonRetryableError,
}


def register_conformance_tasks(scheduler: Scheduler) -> Scheduler:
    """Declare the suite's tasks (all named ``conf_*``) on ``scheduler``."""

    @scheduler.task(name="conf_occurrence", durable=True)
    async def occurrence(payload: dict[str, Any], ctx: TaskContext) -> Any:
        # a schedule's run: what it was told of its occurrence; stays running
        # ``seconds`` (a durable sleep: virtual time on a virtual clock)
        if payload.get("seconds"):
            await ctx.sleep(float(payload["seconds"]))
        when = ctx.scheduled_for
        return {"scheduled_for": when and when.isoformat(), "occurrence_id": ctx.occurrence_id}

    @scheduler.task(name="conf_echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload.get("value")

    @scheduler.task(name="conf_sync_echo")
    def sync_echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return {"value": payload.get("value"), "attempt": ctx.attempt, "task": ctx.task_name}

    @scheduler.task(name="conf_tuple")
    async def returns_tuple(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return {"pair": (1, 2), 3: "int key"}

    @scheduler.task(name="conf_big_result")
    async def big_result(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return "x" * int(payload["bytes"])

    @scheduler.task(name="conf_not_json")
    async def not_json(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return {1, 2}

    @scheduler.task(name="conf_flaky", retries=2)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> int:
        if ctx.attempt <= int(payload["fail_times"]):
            raise RuntimeError(f"planned failure on attempt {ctx.attempt}")
        return ctx.attempt

    @scheduler.task(name="conf_fail")
    async def fail(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise ValueError("boom: conformance failure")

    @scheduler.task(name="conf_slow")
    async def slow(payload: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(float(payload.get("seconds", 30)))
        return "finished"

    @scheduler.task(name="conf_cancel_race")
    async def cancel_race(payload: dict[str, Any], ctx: TaskContext) -> str:
        # Waits for a cancel request a bounded time, then returns normally, even
        # if the wait itself is interrupted: the run's code finishes just as its
        # cancel arrives, the race a backend must still report one way.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(payload.get("seconds", 30))
        try:
            while not ctx.cancelled and loop.time() < deadline:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass  # deliberately swallowed: the code returns right after the cancel
        return "finished"

    @scheduler.task(name="conf_timeout", timeout=1, retries=1)
    async def too_slow(payload: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(float(payload.get("seconds", 10)))
        return "finished"

    @scheduler.task(name="conf_durable", durable=True)
    async def durable(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        await ctx.sleep(float(payload["seconds"]))
        return {"woke": True, "task_id": ctx.task_id}

    @scheduler.task(name="conf_sleep_not_durable")
    async def sleep_not_durable(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(1)

    @scheduler.task(name="conf_self_schedule")
    async def self_schedule(payload: dict[str, Any], ctx: TaskContext) -> str:
        return await ctx.scheduler.schedule_task(
            "conf_echo", {"value": payload.get("value")}, delay_seconds=float(payload["delay"])
        )

    @scheduler.task(name="conf_cron_target")
    async def cron_target(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload

    @scheduler.task(name="conf_declared_cron", cron=DECLARED_CRON)
    async def declared_cron(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    @scheduler.task(name="conf_context")
    async def context(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        return {
            "task_id": ctx.task_id,
            "task_name": ctx.task_name,
            "attempt": ctx.attempt,
            "cancelled": ctx.cancelled,
        }

    _register_policy_tasks(scheduler)
    _register_sync_tasks(scheduler)
    return scheduler


async def _stamp_attempt(payload: dict[str, Any], ctx: TaskContext) -> None:
    """Fail attempts 1 and 2, succeed on 3. Each attempt records when it
    started (by the scheduler's clock, virtual or not) as a pending schedule
    of conf_attempt_log, which the test finds wherever the worker runs. A
    schedule, not a run: Hatchet makes a run started inside a task its child,
    and a retry asking again gets the first attempt's child back."""
    scheduler = ctx.scheduler
    virtual = scheduler.capabilities.virtual_time
    started = (cast(VirtualClockScheduler, scheduler).clock.now() if virtual else utc_now()).isoformat()
    record = {"tag": payload["tag"], "attempt": ctx.attempt, "started": started}
    await ctx.scheduler.schedule_task("conf_attempt_log", record, delay_seconds=86400)
    if ctx.attempt <= 2:
        raise RuntimeError(f"planned failure on attempt {ctx.attempt}")


def _register_policy_tasks(scheduler: Scheduler) -> None:
    """Tasks for the retry, failure-callback, concurrency and priority rules."""

    @scheduler.task(name="conf_fixed_backoff", retries=2, backoff="fixed", backoff_base=FIXED_BACKOFF)
    async def fixed_backoff(payload: dict[str, Any], ctx: TaskContext) -> None:
        await _stamp_attempt(payload, ctx)

    base, cap = EXPONENTIAL_BACKOFF

    @scheduler.task(
        name="conf_exponential_backoff",
        retries=2,
        backoff="exponential",
        backoff_base=base,
        backoff_max_seconds=cap,
    )
    async def exponential_backoff(payload: dict[str, Any], ctx: TaskContext) -> None:
        await _stamp_attempt(payload, ctx)

    @scheduler.task(name="conf_attempt_log")
    async def attempt_log(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload

    @scheduler.task(
        name="conf_retry_rules",
        retries=1,
        retry_on=(ConnectionError,),
        no_retry_on=(ConnectionRefusedError,),
    )
    async def retry_rules(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise _ERRORS[payload["raise"]](f"planned {payload['raise']} on attempt {ctx.attempt}")

    async def record_failure(failure: TaskFailure) -> None:
        # a run of its own: the test finds it wherever the worker runs
        await scheduler.run_task(
            "conf_failure_sink",
            {
                "task_name": failure.task_name,
                "task_id": failure.task_id,
                "payload": failure.payload,
                "error": failure.error,
                "attempts": failure.attempts,
            },
        )

    @scheduler.task(name="conf_on_failure", retries=1, on_failure=record_failure)
    async def on_failure(payload: dict[str, Any], ctx: TaskContext) -> int:
        if ctx.attempt <= int(payload["fail_times"]):
            raise ValueError(f"planned failure on attempt {ctx.attempt}")
        return ctx.attempt

    @scheduler.task(name="conf_timeout_on_failure", timeout=1, on_failure=record_failure)
    async def timeout_on_failure(payload: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(10)
        return "finished"

    @scheduler.task(name="conf_failure_sink")
    async def failure_sink(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload

    @scheduler.task(name="conf_limited", concurrency=1, concurrency_key="agent_id")
    async def limited(payload: dict[str, Any], ctx: TaskContext) -> Any:
        # when its code ran, by the real clock: on a virtual clock the run's own
        # timestamps stand still while it sleeps, so only these show an overlap
        started = utc_now().isoformat()
        await asyncio.sleep(float(payload["seconds"]))
        return {"agent_id": payload["agent_id"], "started": started, "finished": utc_now().isoformat()}

    @scheduler.task(name="conf_prioritized")  # priority 1; runs ask for more
    async def prioritized(payload: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(float(payload["seconds"]))
        return str(payload["label"])

    @scheduler.task(name="conf_sleep_zero", durable=True)
    async def sleep_zero(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(float(payload["seconds"]))


def _log_attempt(ctx: TaskContext, record: dict[str, Any]) -> None:
    """From a sync task: leave ``record`` as a pending schedule of
    conf_attempt_log (a day out), through the blocking ``ctx.sync_scheduler``."""
    ctx.sync_scheduler.schedule_task("conf_attempt_log", record, delay_seconds=86400)


def _register_sync_tasks(scheduler: Scheduler) -> None:
    """Sync task functions: their threads, timeouts, facade, exits and sleeps."""

    @scheduler.task(name="conf_sync_hang")
    def sync_hang(payload: dict[str, Any], ctx: TaskContext) -> str:
        # says it started, then blocks its thread until cancelled (or a bound)
        _log_attempt(ctx, {"tag": payload["tag"], "attempt": ctx.attempt, "task_id": ctx.task_id})
        deadline = time.monotonic() + float(payload.get("seconds", 60))
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        return "released"

    @scheduler.task(name="conf_sync_timeout", timeout=1, retries=1)
    def sync_timeout(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            deadline = time.monotonic() + float(payload.get("seconds", 30))
            while not ctx.cancelled and time.monotonic() < deadline:
                time.sleep(0.02)
            _log_attempt(ctx, {"tag": payload["tag"], "attempt": 1, "saw_cancelled": ctx.cancelled})
            return {"attempt": 1}
        return {"attempt": ctx.attempt}

    @scheduler.task(name="conf_sync_follow_up")
    def sync_follow_up(payload: dict[str, Any], ctx: TaskContext) -> str:
        return ctx.sync_scheduler.schedule_task(
            "conf_sync_echo", {"value": payload.get("value")}, delay_seconds=float(payload["delay"])
        )

    @scheduler.task(name="conf_sync_asyncio_run")
    def sync_asyncio_run(payload: dict[str, Any], ctx: TaskContext) -> str:
        return asyncio.run(ctx.scheduler.schedule_task("conf_sync_echo", {}, delay_seconds=86400))

    @scheduler.task(name="conf_sync_exit")
    def sync_exit(payload: dict[str, Any], ctx: TaskContext) -> None:
        sys.exit(int(payload["code"]))

    @scheduler.task(name="conf_exit")
    async def async_exit(payload: dict[str, Any], ctx: TaskContext) -> None:
        sys.exit(int(payload["code"]))

    @scheduler.task(name="conf_sync_sleep")
    def sync_sleep(payload: dict[str, Any], ctx: TaskContext) -> None:
        ctx.sleep(1)  # not awaited: it must raise, not be a silent no-op
