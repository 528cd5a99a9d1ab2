"""Benchmark 6: virtual time. A per-minute cron over 30 simulated days plus delayed
tasks, on the in-memory backend: wall time and peak memory."""

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


DEFAULT = Sizes()
QUICK = Sizes(days=3, delayed=1_000)


async def _simulate(sizes: Sizes) -> dict[str, int]:
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))

    @scheduler.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    @scheduler.task(name="later")
    async def later(payload: dict[str, Any], ctx: TaskContext) -> int:
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
        done = await scheduler.list_tasks(states=[TaskState.SUCCEEDED], limit=10**9)
        pending = await scheduler.list_scheduled_tasks()
    return {
        "cron runs": sum(1 for t in done if t.task_name == "tick"),
        "delayed runs": sum(1 for t in done if t.task_name == "later"),
        "still pending": len(pending),
    }


def _cron_next_cost(calls: int = 500) -> float:
    """Seconds per ``next_fire_time`` call for a per-minute cron."""
    t0 = time.perf_counter()
    when = START
    for _ in range(calls):
        when = next_fire_time("* * * * *", when)
    return (time.perf_counter() - t0) / calls


def _status_kib(field: str) -> int:
    """A size from /proc/self/status (VmRSS: now, VmHWM: peak of this process image)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(days: float, delayed: int) -> None:
    """Run one simulation in this (fresh) process and print what it measured as JSON."""
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    counts = asyncio.run(_simulate(Sizes(days=days, delayed=delayed)))
    wall = time.perf_counter() - t0
    # not ru_maxrss: Linux carries the parent's peak over fork + exec
    peak = _status_kib("VmHWM")
    print(json.dumps({"counts": counts, "wall": wall, "rss_before_kib": before, "rss_peak_kib": peak}))


def run(sizes: Sizes, env: Env) -> Result:
    expected_cron = round(sizes.days * 24 * 60)
    # a fresh process, so the peak RSS is this simulation's and nothing else's
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.virtual_time", str(sizes.days), str(sizes.delayed)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the simulation process exited {done.returncode}: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    counts: dict[str, int] = found["counts"]
    wall: float = found["wall"]
    peak = found["rss_peak_kib"] * 1024
    base = found["rss_before_kib"] * 1024
    runs = counts["cron runs"] + counts["delayed runs"]
    result = Result(
        NAME,
        TITLE,
        method=(
            f"A `MemoryScheduler` on a `VirtualClock` with its worker running, a `* * * * *` cron and "
            f"{sizes.delayed:,} tasks delayed at random over the window; one `advance({sizes.days:g} days)` "
            f"runs everything in due order. Expected: {expected_cron:,} cron runs and {sizes.delayed:,} "
            "delayed runs, all succeeded. It runs in a fresh Python process; peak memory is that process's "
            "peak resident set size (`VmHWM`), next to its size before the simulation started "
            "(interpreter and imports). The scheduler keeps every finished run's record, so memory "
            "grows with the number of runs."
        ),
    )
    result.tables.append(
        Table(
            "Virtual time",
            [
                "simulated",
                "cron runs",
                "delayed runs",
                "pending after",
                "wall time",
                "runs per second",
                "peak RSS (before)",
            ],
            [
                [
                    f"{sizes.days:g} days",
                    f"{counts['cron runs']:,} of {expected_cron:,}",
                    f"{counts['delayed runs']:,} of {sizes.delayed:,}",
                    str(counts["still pending"]),
                    f"{wall:.1f} s",
                    f"{runs / wall:,.0f}",
                    f"{peak / 2**20:.0f} MiB ({base / 2**20:.0f} MiB)",
                ]
            ],
        )
    )
    speedup = sizes.days * 86400 / wall
    result.headlines.append(
        f"virtual time: {sizes.days:g} simulated days ({runs:,} runs) in {wall:.1f} s of wall time, "
        f"{speedup:,.0f}x faster than real time; peak RSS {peak / 2**20:.0f} MiB "
        f"({(peak - base) / 2**20:.0f} MiB above the bare interpreter)"
    )
    result.data = {**counts, "expected cron runs": expected_cron}
    per_tick = _cron_next_cost()
    result.notes.append(
        f"Where the time goes: computing a cron's next fire time (`owlclaw.scheduler.cron.next_fire_time`, "
        f"which builds a new croniter each call) costs {per_tick * 1e3:.2f} ms here, and each of the "
        f"{expected_cron:,} ticks does it once, so about {per_tick * expected_cron:.0f} s of the "
        f"{wall:.0f} s go to it."
    )
    if counts["cron runs"] != expected_cron or counts["delayed runs"] != sizes.delayed:
        result.notes.append(
            f"**Unexpected run counts**: {counts}; expected {expected_cron} cron runs and "
            f"{sizes.delayed} delayed runs."
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one virtual-time simulation; prints JSON")
    parser.add_argument("days", type=float)
    parser.add_argument("delayed", type=int)
    cli = parser.parse_args()
    _child(cli.days, cli.delayed)
