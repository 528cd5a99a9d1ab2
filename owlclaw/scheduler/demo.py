"""``owlclaw-scheduler demo``: a short real-time tour on a live scheduler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from owlclaw.scheduler.models import TaskContext, TaskInfo, TaskState
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["TOUR", "declare_demo_tasks", "missing_from_tour", "run_demo"]


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


#: What the tour shows, as (label, task, result) of a succeeded run.
TOUR = (
    ("run now", "demo_greet", "hello ada"),
    ("after a delay", "demo_greet", "hello later"),
    ("retries", "demo_flaky", "ok on attempt 3"),
    ("self-scheduling", "demo_agent", "step 3: done"),
    ("cron", "demo_heartbeat", "beat"),
)


def missing_from_tour(seen: dict[str, TaskInfo]) -> list[str]:
    """The tour's steps that no run in ``seen`` has shown yet."""
    done = {(i.task_name, i.result) for i in seen.values() if i.state is TaskState.SUCCEEDED}
    missing = [label for label, task, result in TOUR if (task, result) not in done]
    if not any(i.state is TaskState.CANCELLED for i in seen.values()):
        missing.append("cancel")
    return missing


async def run_demo(
    scheduler: Scheduler, timeout: float = 60.0, out: Callable[[str], None] = print
) -> list[str]:
    """Run the tour until every step has shown, or ``timeout`` seconds pass.

    Prints every state change; returns the steps still missing (empty when complete).
    """
    started = time.monotonic()
    seen: dict[str, TaskInfo] = {}

    def say(text: str) -> None:
        out(f"{time.monotonic() - started:5.1f}s  {text}")

    in_process = scheduler.capabilities.start_worker  # else its workers run in their own process
    async with scheduler:
        if in_process:
            await scheduler.start_worker()
        say(
            f"backend={scheduler.backend_name} worker={'in-process' if in_process else 'external'}; "
            "cron demo_heartbeat fires every 2 seconds"
        )
        await scheduler.run_task("demo_greet", {"name": "ada"})
        say("run_task demo_greet: now")
        await scheduler.schedule_task("demo_greet", {"name": "later"}, delay_seconds=2)
        say("schedule_task demo_greet: in 2s")
        # an hour out, so it is still pending when cancelled however slow the engine is
        doomed = await scheduler.schedule_task("demo_greet", {"name": "never"}, delay_seconds=3600)
        say(f"schedule_task demo_greet: in 1h ({doomed[:8]})")
        await scheduler.run_task("demo_flaky")
        say("run_task demo_flaky: fails twice; retries=2 with backoff 1.5s, 2.25s")
        await scheduler.run_task("demo_agent", {"step": 1})
        say("run_task demo_agent: schedules itself until step 3")
        cancelled = await scheduler.cancel_task(doomed)
        seen[doomed] = await scheduler.get_task_status(doomed)
        say(f"cancel_task {doomed[:8]}: {cancelled}, now {seen[doomed].state.value}")
        missing = missing_from_tour(seen)
        while missing and time.monotonic() - started < timeout:
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
            missing = missing_from_tour(seen)
            if missing:
                await asyncio.sleep(0.1 if in_process else 0.5)
        if in_process:
            await scheduler.stop_worker()
    say("tour complete" if not missing else f"gave up after {timeout:g}s; not seen: {', '.join(missing)}")
    return missing
