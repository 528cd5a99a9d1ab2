"""Benchmark 6: virtual time. A per-minute cron over 30 simulated days plus delayed
tasks, and a per-second cron over a day, on the in-memory backend: wall time and
peak memory; draining a concurrency=1 queue; the cost of a cron's next fire time
beside croniter and APScheduler's cron trigger."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.env import Env
from benchmarks.report import Result, Table
from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.cron import next_fire_time
from owlclaw.scheduler.models import TaskContext, TaskState

NAME = "virtual-time"
TITLE = "In-memory backend: 30 simulated days on a virtual clock"
NEEDS_ENGINE = False
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    days: float = 30  # a fraction works too (the smoke test simulates hours)
    delayed: int = 10_000
    second_days: float = 1  # days of a per-second cron
    drain: tuple[int, ...] = (1_000, 2_000, 4_000)  # queued runs of a concurrency=1 task


DEFAULT = Sizes()
QUICK = Sizes(days=3, delayed=1_000, second_days=0.1, drain=(250, 500, 1_000))


async def _simulate(sizes: Sizes) -> dict[str, int]:
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))
    # counted as they end: the scheduler keeps only the last finished runs (MemoryConfig.retention_runs)
    ended = {"tick": 0, "later": 0}

    @scheduler.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        ended["tick"] += 1

    @scheduler.task(name="later")
    async def later(payload: dict[str, Any], ctx: TaskContext) -> int:
        ended["later"] += 1
        return int(payload["n"])

    horizon = sizes.days * 86400
    rng = random.Random(6)
    async with scheduler:
        await scheduler.start_worker()
        await scheduler.add_cron("tick", "* * * * *")
        for n in range(sizes.delayed):
            # strictly before the horizon so every one fires in the window
            await scheduler.schedule_task("later", {"n": n}, delay_seconds=rng.uniform(1, horizon - 1))
        await scheduler.advance(horizon)
        kept = await scheduler.list_tasks(limit=10**9)
        pending = await scheduler.list_scheduled_tasks()
    assert all(t.state is TaskState.SUCCEEDED for t in kept), "a run did not succeed"
    return {"cron runs": ended["tick"], "delayed runs": ended["later"], "still pending": len(pending)}


async def _per_second(days: float) -> dict[str, int]:
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))
    ended = [0]  # counted as they end (see _simulate)

    @scheduler.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        ended[0] += 1

    async with scheduler:
        await scheduler.start_worker()
        await scheduler.add_cron("tick", "* * * * * *")
        await scheduler.advance(days * 86400)
        kept = await scheduler.list_tasks(limit=10**9)
    assert all(t.state is TaskState.SUCCEEDED for t in kept), "a run did not succeed"
    return {"cron runs": ended[0]}


async def _drain(runs: int) -> float:
    """Seconds to run ``runs`` queued runs of a ``concurrency=1`` task, one after another."""
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))

    @scheduler.task(name="one", concurrency=1)
    async def one(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async with scheduler:
        for n in range(runs):
            await scheduler.run_task("one", {"n": n})
        t0 = time.perf_counter()
        await scheduler.start_worker()
        await scheduler.run_until_idle()
        seconds = time.perf_counter() - t0
        done = await scheduler.list_tasks(states=[TaskState.SUCCEEDED], limit=10**9)
    if len(done) != runs:
        raise RuntimeError(f"drain: {len(done)} of {runs} runs succeeded")
    return seconds


def _cron_costs(calls: int = 2000) -> dict[str, float]:
    """Seconds per next-fire-time computation of a per-minute cron, tick after tick."""
    from apscheduler.triggers.cron import CronTrigger
    from croniter import croniter

    def timed(step: Any) -> float:
        when = START
        t0 = time.perf_counter()
        for _ in range(calls):
            when = step(when)
        return (time.perf_counter() - t0) / calls

    reused = croniter("* * * * *", START)
    trigger = CronTrigger.from_crontab("* * * * *", timezone=UTC)
    return {
        "owlclaw next_fire_time": timed(lambda w: next_fire_time("* * * * *", w)),
        "croniter, built per call (before)": timed(lambda w: croniter("* * * * *", w).get_next(datetime)),
        "croniter, reused": timed(lambda w: reused.get_next(datetime)),
        "APScheduler CronTrigger": timed(lambda w: trigger.get_next_fire_time(w, w)),
    }


def _status_kib(field: str) -> int:
    """A size from /proc/self/status (VmRSS: now, VmHWM: peak of this process image)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(days: float, delayed: int, per_second: bool) -> None:
    """Run one simulation in this (fresh) process and print what it measured as JSON."""
    before = _status_kib("VmRSS")
    t0, cpu0 = time.perf_counter(), time.process_time()
    if per_second:
        counts = asyncio.run(_per_second(days))
    else:
        counts = asyncio.run(_simulate(Sizes(days=days, delayed=delayed)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # not ru_maxrss: Linux carries the parent's peak over fork + exec
    peak = _status_kib("VmHWM")
    found = {"counts": counts, "wall": wall, "cpu": cpu, "rss_before_kib": before, "rss_peak_kib": peak}
    print(json.dumps(found))


def _in_child(*args: str) -> dict[str, Any]:
    """One simulation in a fresh process, so the peak RSS is its own and nothing else's."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.virtual_time", *args],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the simulation process exited {done.returncode}: {done.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def run(sizes: Sizes, env: Env) -> Result:
    expected_cron = round(sizes.days * 24 * 60)
    found = _in_child(str(sizes.days), str(sizes.delayed))
    counts: dict[str, int] = found["counts"]
    wall: float = found["wall"]
    peak = found["rss_peak_kib"] * 1024
    base = found["rss_before_kib"] * 1024
    runs = counts["cron runs"] + counts["delayed runs"]
    second = _in_child(str(sizes.second_days), "0", "--per-second")
    expected_seconds = int(sizes.second_days * 86400)  # ticks at 1 s, 2 s, ... up to the end
    second_runs = second["counts"]["cron runs"]
    result = Result(
        NAME,
        TITLE,
        method=(
            f"A `MemoryScheduler` on a `VirtualClock` with its worker running, a `* * * * *` cron and "
            f"{sizes.delayed:,} tasks delayed at random over the window; one `advance({sizes.days:g} days)` "
            f"runs everything in due order. Expected: {expected_cron:,} cron runs and {sizes.delayed:,} "
            "delayed runs, all succeeded. Then a `* * * * * *` (per-second) cron alone over "
            f"{sizes.second_days:g} day(s). Each runs in a fresh Python process; peak memory is that "
            "process's peak resident set size (`VmHWM`), next to its size before the simulation started "
            "(interpreter and imports). The scheduler keeps the records of the last "
            "`MemoryConfig.retention_runs` finished runs (10,000 by default), so memory stays bounded; "
            "runs are counted by the tasks themselves as they run, and every record kept must say "
            "succeeded. The CPU time beside the wall time is that process's own "
            "(on a shared machine the wall time also counts waiting for a core). Then, in this "
            "process: N runs of a `concurrency=1` task queued by `run_task` before the worker starts, "
            "timed from `start_worker()` to the end of "
            "`run_until_idle()`; and the cost of a per-minute cron's next fire time, tick after tick, "
            "beside croniter and APScheduler 3's `CronTrigger`."
        ),
    )

    def row(label: str, found: dict[str, Any], cron: str, delayed: str, pending: str, runs: int) -> list[str]:
        peak, base = found["rss_peak_kib"] * 1024, found["rss_before_kib"] * 1024
        return [
            label,
            cron,
            delayed,
            pending,
            f"{found['wall']:.1f} s ({found['cpu']:.1f} s)",
            f"{runs / found['wall']:,.0f}",
            f"{peak / 2**20:.0f} MiB ({base / 2**20:.0f} MiB)",
        ]

    result.tables.append(
        Table(
            "Virtual time",
            [
                "simulated",
                "cron runs",
                "delayed runs",
                "pending after",
                "wall time (CPU time)",
                "runs per second",
                "peak RSS (before)",
            ],
            [
                row(
                    f"{sizes.days:g} days, per-minute cron",
                    found,
                    f"{counts['cron runs']:,} of {expected_cron:,}",
                    f"{counts['delayed runs']:,} of {sizes.delayed:,}",
                    str(counts["still pending"]),
                    runs,
                ),
                row(
                    f"{sizes.second_days:g} day(s), per-second cron",
                    second,
                    f"{second_runs:,} of {expected_seconds:,}",
                    "-",
                    "-",
                    second_runs,
                ),
            ],
        )
    )
    drains = {n: asyncio.run(_drain(n)) for n in sizes.drain}
    first = sizes.drain[0]
    result.tables.append(
        Table(
            "Draining N queued runs of a concurrency=1 task",
            ["queued runs", "wall time", "per run", f"time / time at {first:,}", f"runs / {first:,}"],
            [
                [
                    f"{n:,}",
                    f"{t:.2f} s",
                    f"{t / n * 1e6:.0f} µs",
                    f"{t / drains[first]:.2f}x",
                    f"{n / first:g}x",
                ]
                for n, t in drains.items()
            ],
        )
    )
    costs = _cron_costs()
    aps = costs["APScheduler CronTrigger"]
    result.tables.append(
        Table(
            "A per-minute cron's next fire time (µs per call)",
            ["computed by", "µs", "/ APScheduler"],
            [[name, f"{c * 1e6:.1f}", f"{c / aps:.2f}x"] for name, c in costs.items()],
        )
    )
    speedup = sizes.days * 86400 / wall
    peak = found["rss_peak_kib"] * 1024
    base = found["rss_before_kib"] * 1024
    result.headlines.append(
        f"virtual time: {sizes.days:g} simulated days ({runs:,} runs) in {wall:.1f} s of wall time, "
        f"{speedup:,.0f}x faster than real time; peak RSS {peak / 2**20:.0f} MiB "
        f"({(peak - base) / 2**20:.0f} MiB above the bare interpreter)"
    )
    result.headlines.append(
        f"virtual time: a per-second cron over {sizes.second_days:g} day(s) ({second_runs:,} runs) in "
        f"{second['wall']:.1f} s; peak RSS {second['rss_peak_kib'] / 1024:.0f} MiB"
    )
    last = sizes.drain[-1]
    result.headlines.append(
        f"concurrency=1 drain: {last:,} runs in {drains[last]:.2f} s, {drains[last] / drains[first]:.2f}x "
        f"the time of {first:,} ({last / first:g}x the runs)"
    )
    result.headlines.append(
        f"cron next fire time: owlclaw {costs['owlclaw next_fire_time'] * 1e6:.1f} µs, APScheduler "
        f"{aps * 1e6:.1f} µs ({costs['owlclaw next_fire_time'] / aps:.2f}x)"
    )
    result.data = {
        **counts,
        "expected cron runs": expected_cron,
        "per-second runs": second_runs,
        "expected per-second runs": expected_seconds,
        "drain seconds": drains,
        "cron next seconds": costs,
    }
    if counts["cron runs"] != expected_cron or counts["delayed runs"] != sizes.delayed:
        result.notes.append(
            f"**Unexpected run counts**: {counts}; expected {expected_cron} cron runs and "
            f"{sizes.delayed} delayed runs."
        )
    if second_runs != expected_seconds:
        result.notes.append(
            f"**Unexpected per-second cron runs**: {second_runs}; expected {expected_seconds}."
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one virtual-time simulation; prints JSON")
    parser.add_argument("days", type=float)
    parser.add_argument("delayed", type=int)
    parser.add_argument("--per-second", action="store_true", help="a per-second cron alone, no delayed tasks")
    cli = parser.parse_args()
    _child(cli.days, cli.delayed, cli.per_second)
