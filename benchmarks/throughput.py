"""Enqueue-to-start at a steady 100 runs/s, each side alone at the full rate.

``latency`` alternates owlclaw and raw calls, so each side gets half the rate.
Here each side (owlclaw ``run_task``, then the raw SDK's ``aio_run(wait_for_result=False)``)
sends the whole rate by itself, as an app would, with a pause between sides
so one's backlog does not slow the other's start.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.engine import Clients, EngineSession
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import ms, summarize
from owlclaw.scheduler.clock import utc_now

NAME = "throughput"
TITLE = "Enqueue-to-start at 100 runs/s, each side alone"
NEEDS_ENGINE = True
SIDES = ("owlclaw", "raw")


@dataclass(frozen=True)
class Sizes:
    rate: int = 100  # runs per second asked of one side
    seconds: float = 10.0
    settle: float = 5.0  # pause between sides


DEFAULT = Sizes()
QUICK = Sizes(seconds=3.0, settle=2.0)


async def _side(
    c: Clients,
    session: EngineSession,
    side: str,
    rate: int,
    seconds: float,
    on_sent: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Trigger ``rate * seconds`` probes from one side; ``on_sent`` runs once every call returned."""
    loop = asyncio.get_running_loop()
    n = max(2, int(rate * seconds))
    tag = uuid.uuid4().hex[:6]
    enqueued: dict[str, float] = {}
    returned: dict[str, float] = {}
    errors: list[str] = []

    async def fire(key: str) -> None:
        enqueued[key] = utc_now().timestamp()
        try:
            if side == "owlclaw":
                await c.owlclaw.run_task("bench_probe", {"key": key})
            else:
                await c.raw_tasks["bench_probe"].aio_run({"key": key}, wait_for_result=False)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(f"{type(exc).__name__}: {exc}")
        returned[key] = utc_now().timestamp()

    start = loop.time()
    pending = []
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        pending.append(asyncio.create_task(fire(f"tp-{side}-{tag}-{i}")))
    await asyncio.gather(*pending)
    if on_sent is not None:
        on_sent()
    probes = await session.wait_probes(set(enqueued), timeout=60 + seconds)
    latency = [probes[k][0]["started"] - enqueued[k] for k in enqueued if k in probes]
    starts = sorted(probes[k][0]["started"] for k in enqueued if k in probes)
    span = (starts[-1] - min(enqueued.values())) if starts else 0.0
    return {
        "n": n,
        "started": len(latency),
        "latency": latency,
        "calls": [returned[k] - enqueued[k] for k in enqueued],
        "start_rate": len(starts) / span if span > 0 else 0.0,
        "errors": errors,
    }


def run(sizes: Sizes, env: Env) -> Result:
    session = env.engine()

    async def main() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        async with session.clients() as c:
            for side in SIDES:
                await _side(c, session, side, 10, 1.0)  # warm-up, not reported
            for side in SIDES:
                await asyncio.sleep(sizes.settle)
                found[side] = await _side(c, session, side, sizes.rate, sizes.seconds)
        return found

    found = asyncio.run(main())
    result = Result(
        NAME,
        TITLE,
        method=(
            f"`bench_probe` runs triggered at {sizes.rate}/s for {sizes.seconds:g} s by one side alone: "
            "owlclaw `run_task` (batched unless `batch_triggers: false`), then the raw SDK's "
            "`aio_run(wait_for_result=False)` (one gRPC call each, on the default thread pool), "
            f"{sizes.settle:g} s apart. Latency = the task's `utc_now()` at start minus the client's "
            "just before the call. Start rate = runs started / (last start - first enqueue)."
        ),
    )
    rows = []
    for side, d in found.items():
        s, c = summarize(d["latency"]), summarize(d["calls"])
        missing = d["n"] - d["started"]
        rows.append(
            [
                side,
                f"{d['n']}" + (f" ({missing} never started)" if missing else ""),
                f"{d['start_rate']:.0f}/s",
                ms(s.p50),
                ms(s.p95),
                ms(s.p99),
                ms(c.p50),
                str(len(d["errors"])),
            ]
        )
        result.headlines.append(
            f"{sizes.rate}/s, {side} alone: {d['started']}/{d['n']} started at {d['start_rate']:.0f}/s, "
            f"enqueue-to-start p50 {ms(s.p50)} ms, p99 {ms(s.p99)} ms"
        )
        if d["errors"]:
            result.notes.append(f"{side}: {len(d['errors'])} calls failed, e.g. `{d['errors'][0]}`.")
    result.data = {side: {"sent": d["n"], "started": d["started"]} for side, d in found.items()}
    result.tables.append(
        Table(
            f"Enqueue-to-start at {sizes.rate}/s (ms)",
            ["side", "runs", "start rate", "p50", "p95", "p99", "trigger call p50", "errors"],
            rows,
        )
    )
    return result
