"""A schedule client in a process of its own, for the competing-clients tests:
``python schedule_client.py JOB.json`` (the API token in ``HATCHET_CLIENT_TOKEN``).

``JOB.json`` holds ``settings`` (the ``scheduler.hatchet`` section: engine,
namespace, ``state_database_url``), ``schedule_id``, ``go`` (a file path) and
``ops``. The process connects, prints ``ready``, waits until ``go`` exists (so
two processes start their ops at the same instant), then runs each op on the
schedule and prints one JSON line per op: ``{"op": ..., "result": ...}``.

Ops: ``["backfill", start_iso, end_iso]`` (result: the run ids),
``["pause"]``, ``["resume"]``, ``["skip", n]``, ``["sleep", seconds]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.testing import register_conformance_tasks

GO_TIMEOUT = 120.0  # the other process may take that long to import the SDK on a loaded runner


async def run_op(scheduler: HatchetScheduler, sid: str, op: list[Any]) -> Any:
    name = op[0]
    if name == "backfill":
        ids = await scheduler.backfill_schedule(
            sid, datetime.fromisoformat(op[1]), datetime.fromisoformat(op[2])
        )
        return list(ids)
    if name == "pause":
        return await scheduler.pause_schedule(sid)
    if name == "resume":
        return await scheduler.resume_schedule(sid)
    if name == "skip":
        return await scheduler.skip_schedule(sid, int(op[1]))
    if name == "sleep":
        return await asyncio.sleep(float(op[1]))
    raise ValueError(f"unknown op {op!r}: use backfill, pause, resume, skip or sleep")


async def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    config = HatchetConfig.model_validate(job["settings"])
    scheduler = HatchetScheduler(config)
    register_conformance_tasks(scheduler)
    async with scheduler:
        await scheduler.get_schedule(job["schedule_id"])  # the state database answers
        print("ready", flush=True)
        go = Path(job["go"])
        await poll_until(go.exists, timeout=GO_TIMEOUT, interval=0.02, what=f"the go file {go}")
        for op in job["ops"]:
            result = await run_op(scheduler, job["schedule_id"], op)
            print(json.dumps({"op": op[0], "result": result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
