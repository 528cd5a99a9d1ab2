"""The tasks the conformance suite runs, declared the same way on every backend.

They report only through results, errors and states, never through shared
memory, so they behave the same when a worker runs in another process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from owlclaw.scheduler.models import TaskContext
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["DECLARED_CRON", "register_conformance_tasks"]

DECLARED_CRON = "0 0 1 1 *"  # once a year: registered, never fires during a test


def register_conformance_tasks(scheduler: Scheduler) -> Scheduler:
    """Declare the suite's tasks (all named ``conf_*``) on ``scheduler``."""

    @scheduler.task(name="conf_echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload.get("value")

    @scheduler.task(name="conf_sync_echo")
    def sync_echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return {"value": payload.get("value"), "attempt": ctx.attempt, "task": ctx.task_name}

    @scheduler.task(name="conf_tuple")
    async def returns_tuple(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return {"pair": (1, 2), 3: "int key"}

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

    return scheduler
