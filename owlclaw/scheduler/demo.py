"""``owlclaw-scheduler demo``: a short real-time tour on a live scheduler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from owlclaw.scheduler.errors import NotSupportedError
from owlclaw.scheduler.models import TaskContext, TaskInfo
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["declare_demo_tasks", "run_demo"]


def declare_demo_tasks(scheduler: Scheduler) -> Scheduler:
    @scheduler.task(name="demo_greet")
    async def greet(payload: dict[str, Any], ctx: TaskContext) -> str:
        return f"hello {payload['name']}"

    @scheduler.task(name="demo_flaky", retries=2, backoff_factor=1.5)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> str:
        if ctx.attempt < 3:
            raise ConnectionError(f"upstream busy (attempt {ctx.attempt})")
        return f"ok on attempt {ctx.attempt}"

    @scheduler.task(name="demo_agent")
    async def agent(payload: dict[str, Any], ctx: TaskContext) -> str:
        step = int(payload["step"])
        if step < 3:  # the agent decides when it runs next
            await ctx.scheduler.schedule_task("demo_agent", {"step": step + 1}, delay_seconds=1)
            return f"step {step}: next run in 1s"
        return f"step {step}: done"

    @scheduler.task(name="demo_heartbeat", cron="*/2 * * * * *")
    async def heartbeat(payload: dict[str, Any], ctx: TaskContext) -> str:
        return "beat"

    return scheduler


async def run_demo(
    scheduler: Scheduler, seconds: float | None = None, out: Callable[[str], None] = print
) -> dict[str, TaskInfo]:
    """Run the tour for ``seconds``; print every state change; return the last states."""
    started = time.monotonic()
    seen: dict[str, TaskInfo] = {}

    def say(text: str) -> None:
        if out is None:
            print(f"{time.monotonic() - started:5.1f}s  {text}", flush=True)
            return
        out(f"{time.monotonic() - started:5.1f}s  {text}")

    async with scheduler:
        try:
            await scheduler.start_worker()
            in_process = True
        except NotSupportedError:
            in_process = False  # its workers run in their own process
        say(
            f"backend={scheduler.backend_name} worker={'in-process' if in_process else 'external'}; "
            "cron demo_heartbeat fires every 2 seconds"
        )
        await scheduler.run_task("demo_greet", {"name": "ada"})
        say("run_task demo_greet: now")
        await scheduler.schedule_task("demo_greet", {"name": "later"}, delay_seconds=2)
        say("schedule_task demo_greet: in 2s")
        doomed = await scheduler.schedule_task("demo_greet", {"name": "never"}, delay_seconds=3)
        say(f"schedule_task demo_greet: in 3s ({doomed[:8]})")
        await scheduler.run_task("demo_flaky")
        say("run_task demo_flaky: fails twice; retries=2 with backoff 1.5s, 2.25s")
        await scheduler.run_task("demo_agent", {"step": 1})
        say("run_task demo_agent: schedules itself until step 3")
        cancelled = await scheduler.cancel_task(doomed)
        state = (await scheduler.get_task_status(doomed)).state.value
        say(f"cancel_task {doomed[:8]}: {cancelled}, now {state}")
        if seconds is None:
            seconds = 6.0 if in_process else 15.0
        while time.monotonic() - started < seconds:
            current = await scheduler.list_scheduled_tasks() + await scheduler.list_tasks(limit=1000)
            for info in reversed(current):
                before = seen.get(info.id)
                if before is None or (before.state, before.attempts) != (info.state, info.attempts):
                    seen[info.id] = info
                    detail = info.result if info.state.is_final else info.error
                    say(
                        f"{info.task_name:<15} {info.id[:8]}  {info.state.value:<9} "
                        f"attempts={info.attempts}" + (f"  {detail!r}" if detail is not None else "")
                    )
            await asyncio.sleep(0.1 if in_process else 0.5)
        if in_process:
            await scheduler.stop_worker()
    return seen
