"""Benchmark 4: the seed's cases. 1,000 tasks due at one instant; 10 concurrent tasks."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks import charts, raw_worker
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import ms, summarize
from owlclaw.scheduler.clock import utc_now

NAME = "seed"
TITLE = "The seed's cases: 1,000 tasks at one instant, 10 concurrent tasks"
NEEDS_ENGINE = True
#: whose worker takes the burst: owlclaw's (``benchmarks.app``), then the raw SDK's
#: (``benchmarks.raw_worker``); each side's schedules are made by its own client
SIDES = ("owlclaw", "raw SDK")


@dataclass(frozen=True)
class Sizes:
    burst: int = 1_000  # tasks scheduled for the same instant
    concurrency: int = 16  # schedule_task calls in flight while creating them
    parallel: int = 10  # concurrent tasks that must all finish within the limit
    work_seconds: float = 2.0  # what each of those does (a sleep)
    limit_seconds: float = 30.0


DEFAULT = Sizes()
QUICK = Sizes(burst=200)


def run(sizes: Sizes, env: Env) -> Result:
    session = env.engine()
    tag = uuid.uuid4().hex[:6]

    async def burst(c: Any, side: str) -> dict[str, Any]:
        # the instant: far enough ahead that creation should finish first (>= 50 per second)
        lead = 5.0 + sizes.burst / 50
        due = utc_now() + timedelta(seconds=lead)
        keys = [f"seed-{side}-{tag}-{i}" for i in range(sizes.burst)]
        gate = asyncio.Semaphore(sizes.concurrency)

        async def create(key: str) -> None:
            async with gate:
                if side == "owlclaw":
                    await c.owlclaw.schedule_task("bench_probe", {"key": key}, at=due)
                else:
                    await c.raw_tasks[raw_worker.TASK].aio_schedule(due, {"key": key})

        t0 = time.perf_counter()
        await asyncio.gather(*(create(k) for k in keys))
        creation = time.perf_counter() - t0
        created_by = utc_now()
        probes = await session.wait_probes(set(keys), timeout=lead + 240)
        await asyncio.sleep(3)  # a second execution, if any, would show up by now
        return {
            "due": due.timestamp(),
            "created_by": created_by.timestamp(),
            "creation": creation,
            "probes": probes,
            "executions": session.executions(set(keys)),
        }

    async def main() -> dict[str, Any]:
        async with session.clients() as c:
            s = c.owlclaw
            found = {side: await burst(c, side) for side in SIDES}
            hold_keys = [f"par-{tag}-{i}" for i in range(sizes.parallel)]
            t1 = time.perf_counter()
            ids = await asyncio.gather(
                *(s.run_task("bench_hold", {"key": k, "seconds": sizes.work_seconds}) for k in hold_keys)
            )
            infos = await asyncio.gather(*(s.wait_for_task(i, timeout=sizes.limit_seconds * 4) for i in ids))
            parallel_wall = time.perf_counter() - t1
            hold = await session.wait_probes(set(hold_keys), timeout=10)
        return {
            **found,
            "parallel_wall": parallel_wall,
            "states": [i.state.value for i in infos],
            "hold": hold,
        }

    session.start_raw_worker()  # idle while owlclaw's worker takes its burst, and the reverse
    f = asyncio.run(main())
    bursts = {side: _burst_figures(f[side], sizes.burst) for side in SIDES}
    result = Result(
        NAME,
        TITLE,
        method=(
            f"{sizes.burst:,} one-off schedules ({sizes.concurrency} creation calls in flight), all for "
            "the same instant T, chosen far enough ahead that creation ends first; each run notes its "
            "start time, and every execution is counted from the workers' records (three seconds after "
            "the last start, to catch late duplicates). Done twice on one engine: owlclaw "
            "`schedule_task(at=T)` served by owlclaw's worker (`owlclaw-scheduler worker`), then the raw "
            "SDK's `aio_schedule(T)` served by a worker written with the raw SDK (`benchmarks.raw_worker`: "
            "ordinary slots only, the same number); each worker stays idle during the other's burst. "
            f"Then {sizes.parallel} `run_task` calls of a task that works {sizes.work_seconds:g} s, "
            "awaited with `wait_for_task`; the seed's requirement is that all finish within "
            f"{sizes.limit_seconds:g} s."
        ),
    )
    result.tables.append(
        Table(
            f"{sizes.burst:,} tasks due at one instant",
            [
                "worker",
                "creation rate",
                "lateness p50",
                "lateness p99",
                "last start after T",
                "executed once",
                "more than once",
                "never",
            ],
            [
                [
                    side,
                    f"{b['rate']:.0f}/s ({f[side]['creation']:.1f} s)",
                    f"{ms(b['summary'].p50)} ms",
                    f"{ms(b['summary'].p99)} ms",
                    f"{b['summary'].max:.2f} s",
                    f"{b['once']:,}",
                    str(b["twice"]),
                    str(b["never"]),
                ]
                for side, b in bursts.items()
            ],
        )
    )
    starts = [recs[0]["started"] for recs in f["hold"].values()]
    ends = [recs[0]["finished"] for recs in f["hold"].values()]
    spread = (max(starts) - min(starts)) if starts else float("nan")
    within = f["parallel_wall"] <= sizes.limit_seconds and all(st == "succeeded" for st in f["states"])
    result.tables.append(
        Table(
            f"{sizes.parallel} concurrent tasks of {sizes.work_seconds:g} s",
            [
                "first call to last finish",
                "start spread",
                "all succeeded",
                f"within {sizes.limit_seconds:g} s",
            ],
            [
                [
                    f"{f['parallel_wall']:.2f} s",
                    f"{spread:.2f} s",
                    "yes" if all(st == "succeeded" for st in f["states"]) else f"no: {f['states']}",
                    "yes" if within else "no",
                ]
            ],
        )
    )
    result.notes.append(
        "How the engine fires them (hatchet-lite v0.105.0, `internal/services/ticker/`): every 5 s the "
        "ticker claims the schedules due within the next 5 s and arms one in-process timer per "
        "schedule; when a timer fires, that schedule is turned into its own run (an idempotency key "
        "against double firing, a message to the task queue, then the schedule row is deleted). So "
        "with T more than 5 s ahead, all of them are armed in time, and the spread of start times "
        "measures how fast the engine turns many due schedules into runs and hands them to the "
        "worker, not a polling interval."
    )
    for side, b in bursts.items():
        if b["overran"] > 0:
            result.notes.append(
                f"{side}: creation ended {b['overran']:.1f} s after T, so the last tasks were created "
                "already due; their lateness includes that."
            )
    if ends and starts:
        result.notes.append(
            f"The {sizes.parallel} tasks ran side by side: all started within {spread:.2f} s of each other "
            f"and the last finished {max(ends) - min(starts):.2f} s after the first started."
        )
    ours, raw = bursts["owlclaw"], bursts["raw SDK"]
    ratio = ours["summary"].max / raw["summary"].max if raw["summary"].max > 0 else float("nan")
    result.data = {
        "executed once": ours["once"],
        "more than once": ours["twice"],
        "never": ours["never"],
        "raw SDK worker": {k: raw[k] for k in ("once", "twice", "never")},
        "last start ratio": ratio,
        "parallel states": f["states"],
        "parallel within limit": within,
    }
    for side, b in bursts.items():
        result.headlines.append(
            f"{sizes.burst:,} tasks at one instant, {side} worker: created at {b['rate']:.0f}/s, lateness "
            f"p50 {ms(b['summary'].p50)} ms, p99 {ms(b['summary'].p99)} ms, last start "
            f"{b['summary'].max:.2f} s after T, {b['once']:,} executed exactly once ({b['twice']} more "
            f"than once, {b['never']} never)"
        )
    result.headlines.append(f"the burst's last start, owlclaw / raw SDK worker: {ratio:.2f}x")
    result.headlines.append(
        f"{sizes.parallel} concurrent {sizes.work_seconds:g} s tasks: all done in {f['parallel_wall']:.2f} s "
        f"(limit {sizes.limit_seconds:g} s: {'met' if within else 'missed'})"
    )
    result.charts.append(
        charts.cdf(
            env.chart_dir / "seed.png",
            f"{sizes.burst:,} tasks due at one instant: start minus due",
            {f"{side} worker": [v * 1000 for v in b["late"]] for side, b in bursts.items()},
            "milliseconds late",
        )
    )
    return result


def _burst_figures(found: dict[str, Any], burst: int) -> dict[str, Any]:
    late = [recs[0]["started"] - found["due"] for recs in found["probes"].values()]
    counts = found["executions"]
    return {
        "late": late,
        "summary": summarize(late),
        "once": sum(1 for v in counts.values() if v == 1),
        "twice": sum(1 for v in counts.values() if v > 1),
        "never": burst - len(counts),
        "rate": burst / found["creation"],
        "overran": found["created_by"] - found["due"],
    }
