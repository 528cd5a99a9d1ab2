"""Benchmark 4: the seed's cases. 1,000 tasks due at one instant; 10 concurrent tasks."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks import charts
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import ms, summarize
from owlclaw.scheduler.clock import utc_now

NAME = "seed"
TITLE = "The seed's cases: 1,000 tasks at one instant, 10 concurrent tasks"
NEEDS_ENGINE = True


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

    async def main() -> dict[str, Any]:
        async with session.clients() as c:
            s = c.owlclaw
            # the instant: far enough ahead that creation should finish first (>= 50 per second)
            lead = 5.0 + sizes.burst / 50
            due = utc_now() + timedelta(seconds=lead)
            keys = [f"seed-{tag}-{i}" for i in range(sizes.burst)]
            gate = asyncio.Semaphore(sizes.concurrency)

            async def create(key: str) -> None:
                async with gate:
                    await s.schedule_task("bench_probe", {"key": key}, at=due)

            t0 = time.perf_counter()
            await asyncio.gather(*(create(k) for k in keys))
            creation = time.perf_counter() - t0
            created_by = utc_now()
            probes = await session.wait_probes(set(keys), timeout=lead + 240)
            await asyncio.sleep(3)  # a second execution, if any, would show up by now
            executions = session.executions(set(keys))

            hold_keys = [f"par-{tag}-{i}" for i in range(sizes.parallel)]
            t1 = time.perf_counter()
            ids = await asyncio.gather(
                *(s.run_task("bench_hold", {"key": k, "seconds": sizes.work_seconds}) for k in hold_keys)
            )
            infos = await asyncio.gather(*(s.wait_for_task(i, timeout=sizes.limit_seconds * 4) for i in ids))
            parallel_wall = time.perf_counter() - t1
            hold = await session.wait_probes(set(hold_keys), timeout=10)
        return {
            "due": due.timestamp(),
            "created_by": created_by.timestamp(),
            "creation": creation,
            "probes": probes,
            "executions": executions,
            "parallel_wall": parallel_wall,
            "states": [i.state.value for i in infos],
            "hold": hold,
        }

    f = asyncio.run(main())
    late = [recs[0]["started"] - f["due"] for recs in f["probes"].values()]
    s = summarize(late)
    counts = f["executions"]
    once = sum(1 for v in counts.values() if v == 1)
    twice = sum(1 for v in counts.values() if v > 1)
    never = sizes.burst - len(counts)
    rate = sizes.burst / f["creation"]
    overran = f["created_by"] - f["due"]
    result = Result(
        NAME,
        TITLE,
        method=(
            f"{sizes.burst:,} `schedule_task(at=T)` calls through owlclaw ({sizes.concurrency} in flight), "
            "all for the same instant T, chosen far enough ahead that creation ends first; each run notes "
            "its start time, and every execution is counted from the worker's records (three seconds "
            f"after the last start, to catch late duplicates). Then {sizes.parallel} `run_task` calls of a "
            f"task that works {sizes.work_seconds:g} s, awaited with `wait_for_task`; the seed's "
            f"requirement is that all finish within {sizes.limit_seconds:g} s."
        ),
    )
    result.tables.append(
        Table(
            f"{sizes.burst:,} tasks due at one instant",
            [
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
                    f"{rate:.0f}/s ({f['creation']:.1f} s)",
                    f"{ms(s.p50)} ms",
                    f"{ms(s.p99)} ms",
                    f"{s.max:.2f} s",
                    f"{once:,}",
                    str(twice),
                    str(never),
                ]
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
    if overran > 0:
        result.notes.append(
            f"Creation ended {overran:.1f} s after T, so the last tasks were created already due; "
            "their lateness includes that."
        )
    if ends and starts:
        result.notes.append(
            f"The {sizes.parallel} tasks ran side by side: all started within {spread:.2f} s of each other "
            f"and the last finished {max(ends) - min(starts):.2f} s after the first started."
        )
    result.data = {
        "executed once": once,
        "more than once": twice,
        "never": never,
        "parallel states": f["states"],
        "parallel within limit": within,
    }
    result.headlines.append(
        f"{sizes.burst:,} tasks at one instant: created at {rate:.0f}/s, lateness p50 {ms(s.p50)} ms, "
        f"p99 {ms(s.p99)} ms, last start {s.max:.2f} s after T, {once:,} executed exactly once "
        f"({twice} more than once, {never} never)"
    )
    result.headlines.append(
        f"{sizes.parallel} concurrent {sizes.work_seconds:g} s tasks: all done in {f['parallel_wall']:.2f} s "
        f"(limit {sizes.limit_seconds:g} s: {'met' if within else 'missed'})"
    )
    result.charts.append(
        charts.cdf(
            env.chart_dir / "seed.png",
            f"{sizes.burst:,} tasks due at one instant: start minus due",
            {"owlclaw on hatchet-lite": [v * 1000 for v in late]},
            "milliseconds late",
        )
    )
    return result
