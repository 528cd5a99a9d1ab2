"""A basic task: run it now, run it after a delay, and cancel a run before it starts.

On the memory backend (the default), from the repository root::

    python examples/basic_task.py

On Hatchet, run a worker for these tasks in one terminal and the example in
another (both from the repository root; see examples/README.md for the engine)::

    export OWLCLAW_CONFIG=examples/owlclaw.yaml OWLCLAW_SCHEDULER_BACKEND=hatchet
    owlclaw-scheduler worker examples.basic_task:scheduler
    python examples/basic_task.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from owlclaw.scheduler import TaskContext, TaskInfo, create_scheduler
from owlclaw.scheduler.errors import NotSupportedError

APP = "examples.basic_task:scheduler"

scheduler = create_scheduler()  # the backend comes from owlclaw.yaml or the environment


@scheduler.task(name="summarize_news", retries=2, timeout=30)
async def summarize_news(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    ticker = payload["ticker"]
    # a real agent fetches the headlines and asks its LLM here
    return {"ticker": ticker, "summary": f"nothing unusual in today's {ticker} headlines"}


async def start_worker() -> None:
    try:
        await scheduler.start_worker()
    except NotSupportedError:  # Hatchet: workers run in a process of their own
        print(
            "this backend runs tasks in a separate worker process; if none is running, "
            f"start one in another terminal: owlclaw-scheduler worker {APP}"
        )


async def main(delay_seconds: float = 2.0, timeout: float = 60.0) -> dict[str, TaskInfo]:
    """Summarize AAPL now, NVDA after ``delay_seconds``, and cancel TSLA before it runs.

    Returns the final state of each run, keyed "now", "later" and "cancelled".
    """
    async with scheduler:
        await start_worker()
        now_id = await scheduler.run_task("summarize_news", {"ticker": "AAPL"})
        print(f"queued summarize_news for AAPL to run now (id {now_id})")
        later_id = await scheduler.schedule_task(
            "summarize_news", {"ticker": "NVDA"}, delay_seconds=delay_seconds
        )
        print(f"scheduled summarize_news for NVDA in {delay_seconds:g}s (id {later_id})")
        doomed_id = await scheduler.schedule_task("summarize_news", {"ticker": "TSLA"}, delay_seconds=3600)
        await scheduler.cancel_task(doomed_id)
        print(f"scheduled summarize_news for TSLA in an hour, then cancelled it (id {doomed_id})")

        outcome = {
            "now": await scheduler.wait_for_task(now_id, timeout=timeout),
            "later": await scheduler.wait_for_task(later_id, timeout=timeout + delay_seconds),
            "cancelled": await scheduler.get_task_status(doomed_id),
        }
    for info in outcome.values():
        ticker = info.payload["ticker"]
        if info.result is not None:
            print(f"{ticker}: {info.state.value} after {info.attempts} attempt(s): {info.result['summary']}")
        else:
            print(f"{ticker}: {info.state.value}, never ran")
    return outcome


if __name__ == "__main__":
    asyncio.run(main())
