"""The burst's peer: a worker written with the raw Hatchet SDK, serving
``bench_raw_probe`` with ordinary slots only (no durable tasks), as a plain SDK
user would. ``python -m benchmarks.raw_worker SLOTS``; the connection comes from
the ``HATCHET_CLIENT_*`` environment, the probe file from ``BENCH_PROBE_FILE``
(the records are those of ``benchmarks.app``'s probe). No ``from __future__
import annotations``: the SDK reads the task's annotations at definition time."""

import sys
from typing import Any

from benchmarks.probe import note_probe
from owlclaw.scheduler.clock import utc_now

TASK = "bench_raw_probe"
WORKER = "bench-raw"


def main(slots: int) -> None:
    from hatchet_sdk import Context, Hatchet

    hatchet = Hatchet()

    @hatchet.task(name=TASK, input_validator=dict[str, Any])
    async def probe(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        started = utc_now().timestamp()
        return note_probe({"key": payload.get("key"), "started": started, "task_id": ctx.workflow_run_id})

    hatchet.worker(WORKER, slots=slots, workflows=[probe]).start()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
