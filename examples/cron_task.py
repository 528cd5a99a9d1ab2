"""A cron task: check positions every minute during trading hours, and a
seconds-level cron added at run time, removed once it has fired.

``check_positions`` declares ``* 9-16 * * 1-5``: every minute from 09:00 to
16:59 UTC, Monday to Friday (cron times are always UTC). The scheduler
registers a declared cron when it connects. So that the example finishes in
seconds at any hour, ``main`` also adds a 6-field cron (seconds first) with
``add_cron``, waits for it to fire, then removes it. Both backends accept
seconds-level crons.

On the memory backend (the default), from the repository root::

    python examples/cron_task.py

On Hatchet, run a worker for these tasks in one terminal and the example in
another (both from the repository root; see examples/README.md for the engine)::

    export OWLCLAW_CONFIG=examples/owlclaw.yaml OWLCLAW_SCHEDULER_BACKEND=hatchet
    owlclaw-scheduler worker examples.cron_task:scheduler
    python examples/cron_task.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from owlclaw.scheduler import TaskContext, TaskInfo, create_scheduler
from owlclaw.scheduler.errors import NotSupportedError, WaitTimeoutError

APP = "examples.cron_task:scheduler"
TRADING_HOURS = "* 9-16 * * 1-5"  # every minute, 09:00-16:59 UTC, Monday to Friday

scheduler = create_scheduler()  # the backend comes from owlclaw.yaml or the environment


@scheduler.task(name="check_positions", cron=TRADING_HOURS, timeout=50)
async def check_positions(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    book = payload.get("book", "main")  # the declared cron runs with an empty payload
    # a real agent compares positions with its limits here
    return {"book": book, "within_limits": True}


async def start_worker() -> None:
    try:
        await scheduler.start_worker()
    except NotSupportedError:  # Hatchet: workers run in a process of their own
        print(
            "this backend runs tasks in a separate worker process; if none is running, "
            f"start one in another terminal: owlclaw-scheduler worker {APP}"
        )


async def wait_for_fires(payload: dict[str, Any], fires: int, timeout: float) -> list[TaskInfo]:
    """The first ``fires`` finished runs that carry ``payload``, oldest first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        runs = await scheduler.list_tasks("check_positions", limit=100)  # newest first
        done = [r for r in reversed(runs) if r.payload == payload and r.state.is_final]
        if len(done) >= fires:
            return done[:fires]
        if loop.time() > deadline:
            raise WaitTimeoutError(
                f"the cron fired {len(done)} of {fires} times in {timeout:g}s; "
                f"is a worker running (owlclaw-scheduler worker {APP})?"
            )
        await asyncio.sleep(0.2)


async def main(fires: int = 2, expression: str = "*/2 * * * * *", timeout: float = 60.0) -> list[TaskInfo]:
    """Add a cron on ``expression``, wait for ``fires`` runs, remove the cron.

    Returns those runs, oldest first.
    """
    async with scheduler:
        await start_worker()
        for cron in await scheduler.list_crons("check_positions"):
            when = f"{cron.next_run_at:%a %Y-%m-%d %H:%M}" if cron.next_run_at else "unknown"
            print(f"declared cron {cron.expression!r} (UTC): next check_positions {when}")
        payload = {"book": "demo"}
        cron_id = await scheduler.add_cron("check_positions", expression, payload)
        print(f"added cron {expression!r} for the demo book; waiting for {fires} fires")
        try:
            runs = await wait_for_fires(payload, fires, timeout)
        finally:
            await scheduler.remove_cron(cron_id)
            print("removed the demo cron")
    for run in runs:
        when = f"{run.scheduled_at:%H:%M:%S}" if run.scheduled_at else "?"
        print(f"cron run at {when} UTC: {run.state.value}, {run.result}")
    return runs


if __name__ == "__main__":
    asyncio.run(main())
