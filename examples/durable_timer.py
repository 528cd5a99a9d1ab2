"""A durable timer: a heartbeat that sleeps, then checks on its agent.

``ctx.sleep()`` in a ``@scheduler.task(durable=True)`` task is a durable
sleep: on Hatchet the engine keeps the timer, so the run completes even if its
worker dies during the sleep and another one starts. It wakes on time unless the
worker died in the last ~20 s of the sleep (the engine's heartbeat timeout); then
it wakes up to that much late. In production the heartbeat sleeps 30 minutes
(``sleep_seconds=1800``); the example sleeps 3 seconds.

On the memory backend (the default), from the repository root::

    python examples/durable_timer.py

On Hatchet, run a worker for these tasks in one terminal and the example in
another (both from the repository root; see examples/README.md for the engine).
Stop and restart the worker during the sleep: the run still completes::

    export OWLCLAW_CONFIG=examples/owlclaw.yaml OWLCLAW_SCHEDULER_BACKEND=hatchet
    owlclaw-scheduler worker examples.durable_timer:scheduler
    python examples/durable_timer.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from owlclaw.scheduler import TaskContext, TaskInfo, create_scheduler
from owlclaw.scheduler.errors import NotSupportedError

APP = "examples.durable_timer:scheduler"
PRODUCTION_SLEEP = 30 * 60

scheduler = create_scheduler()  # the backend comes from owlclaw.yaml or the environment


@scheduler.task(name="heartbeat", durable=True)
async def heartbeat(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    # On Hatchet a run that resumes after a worker restart starts this function
    # again and the sleep returns once its time is up, so keep side effects after it.
    seconds = float(payload.get("sleep_seconds", PRODUCTION_SLEEP))
    await ctx.sleep(seconds)
    # a real heartbeat checks the agent's open work here
    return {"agent_id": payload["agent_id"], "slept_seconds": seconds, "healthy": True}


async def start_worker() -> None:
    try:
        await scheduler.start_worker()
    except NotSupportedError:  # Hatchet: workers run in a process of their own
        print(
            "this backend runs tasks in a separate worker process; if none is running, "
            f"start one in another terminal: owlclaw-scheduler worker {APP}"
        )


async def main(agent_id: str = "agent-7", sleep_seconds: float = 3.0, timeout: float = 60.0) -> TaskInfo:
    """Run one heartbeat that sleeps ``sleep_seconds`` durably; return its final state."""
    async with scheduler:
        await start_worker()
        task_id = await scheduler.run_task(
            "heartbeat", {"agent_id": agent_id, "sleep_seconds": sleep_seconds}
        )
        print(f"heartbeat for {agent_id} started; it sleeps {sleep_seconds:g}s durably (id {task_id})")
        info = await scheduler.wait_for_task(task_id, timeout=timeout + sleep_seconds)
    if info.result is not None:
        print(
            f"heartbeat slept {sleep_seconds:g}s, then checked {agent_id}: healthy={info.result['healthy']}"
        )
    else:
        print(f"heartbeat {info.state.value}: {info.error}")
    return info


if __name__ == "__main__":
    asyncio.run(main())
