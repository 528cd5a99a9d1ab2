"""A self-scheduling agent: each run ends by choosing when the agent runs next,
and what it will look at then.

In OwlClaw the agent's LLM ends a run by calling a ``schedule_once(delay,
focus)`` tool; the tool becomes ``schedule_task``. Here a fixed plan stands in
for the LLM so the example is deterministic. The payload carries the agent's
id, its focus and the run count from one run to the next; the agent stops
after ``max_runs`` runs.

On the memory backend (the default), from the repository root::

    python examples/self_scheduling_agent.py

On Hatchet, run a worker for these tasks in one terminal and the example in
another (both from the repository root; see examples/README.md for the engine)::

    export OWLCLAW_CONFIG=examples/owlclaw.yaml OWLCLAW_SCHEDULER_BACKEND=hatchet
    owlclaw-scheduler worker examples.self_scheduling_agent:scheduler
    python examples/self_scheduling_agent.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from owlclaw.scheduler import TaskContext, TaskInfo, create_scheduler
from owlclaw.scheduler.errors import NotSupportedError

APP = "examples.self_scheduling_agent:scheduler"

scheduler = create_scheduler()  # the backend comes from owlclaw.yaml or the environment

# What the agent looks at after each focus: the stand-in for its LLM's choice.
NEXT_FOCUS = {
    "scan the watchlist": "re-check NVDA after the open",
    "re-check NVDA after the open": "write the end-of-day summary",
    "write the end-of-day summary": "scan the watchlist",
}


def decide(payload: dict[str, Any]) -> tuple[float, str] | None:
    """When to run next and what to look at, or None to stop."""
    if payload["run"] >= payload["max_runs"]:
        return None
    # a real LLM picks the delay per run (e.g. 1800 s); the example uses a short fixed one
    return float(payload["delay_seconds"]), NEXT_FOCUS[payload["focus"]]


@scheduler.task(name="agent_run", retries=1, timeout=300)
async def agent_run(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    async def schedule_once(delay: float, focus: str) -> str:
        """The tool the LLM calls: run me again in ``delay`` seconds, looking at ``focus``."""
        following = {**payload, "focus": focus, "run": payload["run"] + 1}
        return await ctx.scheduler.schedule_task("agent_run", following, delay_seconds=delay)

    notes = f"{payload['agent_id']} run {payload['run']}: {payload['focus']}"  # the LLM's work
    choice = decide(payload)
    next_run = None
    if choice is not None:
        # scheduling comes last: a run retried after scheduling would schedule twice
        delay, focus = choice
        next_run = {"task_id": await schedule_once(delay, focus), "focus": focus, "delay_seconds": delay}
    return {"run": payload["run"], "focus": payload["focus"], "notes": notes, "next": next_run}


async def start_worker() -> None:
    try:
        await scheduler.start_worker()
    except NotSupportedError:  # Hatchet: workers run in a process of their own
        print(
            "this backend runs tasks in a separate worker process; if none is running, "
            f"start one in another terminal: owlclaw-scheduler worker {APP}"
        )


async def main(
    agent_id: str = "agent-7",
    focus: str = "scan the watchlist",
    max_runs: int = 3,
    delay_seconds: float = 1.0,
    timeout: float = 60.0,
) -> list[TaskInfo]:
    """Start the agent and follow its runs until it stops; returns them in order."""
    payload = {
        "agent_id": agent_id,
        "focus": focus,
        "run": 1,
        "max_runs": max_runs,
        "delay_seconds": delay_seconds,
    }
    runs: list[TaskInfo] = []
    async with scheduler:
        await start_worker()
        task_id: str | None = await scheduler.run_task("agent_run", payload)
        print(f"started {agent_id} now, focused on {focus!r}")
        while task_id is not None:
            info = await scheduler.wait_for_task(task_id, timeout=timeout + delay_seconds)
            runs.append(info)
            if info.result is None:
                print(f"run {len(runs)} {info.state.value}: {info.error}")
                break
            following = info.result["next"]
            if following is None:
                print(f"run {info.result['run']} ({info.result['focus']}): done, the agent stopped")
                task_id = None
            else:
                print(
                    f"run {info.result['run']} ({info.result['focus']}): next run in "
                    f"{following['delay_seconds']:g}s, focused on {following['focus']!r}"
                )
                task_id = following["task_id"]
    return runs


if __name__ == "__main__":
    asyncio.run(main())
