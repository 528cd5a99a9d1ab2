"""The tasks the engine benchmarks run, as a worker app:
``owlclaw-scheduler worker benchmarks.app:scheduler``.

Each task notes the time it starts (``utc_now()`` inside the task, so no
clock is compared across machines: client and worker share this one) and
returns it. With ``BENCH_PROBE_FILE`` set it also appends one JSON line per
execution to that file, so the benchmark can count executions (exactly once?)
without listing thousands of runs through the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.probe import PROBE_ENV, note_probe
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.models import TaskContext
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import create_scheduler

__all__ = ["PROBE_ENV", "declare_bench_tasks", "note_probe", "scheduler"]


def declare_bench_tasks(target: Scheduler) -> Scheduler:
    @target.task(name="bench_probe")
    async def probe(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started = utc_now().timestamp()
        return note_probe({"key": payload.get("key"), "started": started, "task_id": ctx.task_id})

    @target.task(name="bench_hold")
    async def hold(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        started = utc_now().timestamp()
        await asyncio.sleep(float(payload.get("seconds", 60)))
        return note_probe({"key": payload.get("key"), "started": started, "finished": utc_now().timestamp()})

    @target.task(name="bench_sleep", durable=True)
    async def durable_sleep(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        seconds = float(payload["seconds"])
        slept_at = utc_now().timestamp()
        await ctx.sleep(seconds)
        woke = utc_now().timestamp()
        return note_probe({"key": payload.get("key"), "slept_at": slept_at, "woke": woke, "seconds": seconds})

    return target


scheduler = declare_bench_tasks(create_scheduler())
