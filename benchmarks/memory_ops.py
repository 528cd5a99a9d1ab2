"""Benchmark 5: in-memory schedule, status, cancel and due-scan cost as pending tasks grow,
against APScheduler 3's ``MemoryJobStore`` in the same run."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from benchmarks import charts
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import percentile, ratio, us
from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.models import TaskContext

NAME = "memory"
TITLE = "In-memory backend: cost per operation as pending tasks grow"
NEEDS_ENGINE = False
OPS = ("schedule", "status", "cancel", "due-scan")
#: Issue 14 item 8, at the largest size: owlclaw / APScheduler at most this, and at
#: most FLAT times its own cost at the smallest size.
TARGETS = {"schedule": 0.2, "status": 3.0, "cancel": 0.5}
FLAT = 1.3
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    pending: tuple[int, ...] = (1_000, 10_000, 100_000)
    ops: int = 2_000  # operations timed per size and operation (at most pending // 2)


DEFAULT = Sizes()
QUICK = Sizes(pending=(1_000, 10_000), ops=500)


def _noop(**payload: Any) -> None:
    return None


def _per_op(fn: Callable[[Any], Any], args: list[Any]) -> list[float]:
    samples = []
    clock = time.perf_counter
    for arg in args:
        t0 = clock()
        fn(arg)
        samples.append(clock() - t0)
    return samples


async def _aper_op(fn: Callable[[Any], Any], args: list[Any]) -> list[float]:
    samples = []
    clock = time.perf_counter
    for arg in args:
        t0 = clock()
        await fn(arg)
        samples.append(clock() - t0)
    return samples


async def _owlclaw(pending: int, ops: int, rng: random.Random) -> dict[str, list[float]]:
    clock = VirtualClock(start=START)
    scheduler = MemoryScheduler(clock=clock)

    @scheduler.task(name="job")
    async def job(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    found: dict[str, list[float]] = {}
    async with scheduler:
        # pending tasks due between 1 hour and 30 days from now
        ids = [
            await scheduler.schedule_task("job", {"n": i}, delay_seconds=rng.uniform(3600, 30 * 86400))
            for i in range(pending)
        ]
        delays = [rng.uniform(3600, 30 * 86400) for _ in range(ops)]
        found["schedule"] = await _aper_op(
            lambda d: scheduler.schedule_task("job", {"n": 0}, delay_seconds=d), delays
        )
        found["status"] = await _aper_op(scheduler.get_task_status, rng.sample(ids, ops))
        found["cancel"] = await _aper_op(scheduler.cancel_task, rng.sample(ids, ops))
        # ops tasks due within the next 10 s, then one clock move fires all of them
        for _ in range(ops):
            await scheduler.schedule_task("job", {"n": 0}, delay_seconds=rng.uniform(1, 10))
        t0 = time.perf_counter()
        await scheduler.advance(11)
        found["due-scan"] = [(time.perf_counter() - t0) / ops]
    return found


def _apscheduler(pending: int, ops: int, rng: random.Random) -> dict[str, list[float]]:
    owner = BackgroundScheduler(timezone=UTC)  # never started: jobs need an owner
    store = MemoryJobStore()
    now = START

    def add(delay: float) -> str:
        run_at = now + timedelta(seconds=delay)
        job = Job(
            owner,
            id=uuid.uuid4().hex,
            func=_noop,
            trigger=DateTrigger(run_at, timezone=UTC),
            executor="default",
            args=(),
            kwargs={"n": 0},
            name="job",
            misfire_grace_time=1,
            coalesce=True,
            max_instances=1,
            next_run_time=run_at,
        )
        store.add_job(job)
        return str(job.id)

    ids = [add(rng.uniform(3600, 30 * 86400)) for _ in range(pending)]
    found: dict[str, list[float]] = {}
    found["schedule"] = _per_op(add, [rng.uniform(3600, 30 * 86400) for _ in range(ops)])
    found["status"] = _per_op(store.lookup_job, rng.sample(ids, ops))
    found["cancel"] = _per_op(store.remove_job, rng.sample(ids, ops))
    for _ in range(ops):
        add(rng.uniform(1, 10))
    # what APScheduler's _process_jobs does for due date-trigger jobs: list, then remove
    t0 = time.perf_counter()
    due = store.get_due_jobs(now + timedelta(seconds=11))
    for job in due:
        store.remove_job(job.id)
    found["due-scan"] = [(time.perf_counter() - t0) / max(len(due), 1)]
    return found


def _targets_table(series: dict[str, list[float]], xs: list[int]) -> Table:
    """Each target of the issue beside what this run measured."""
    rows = []
    for op, target in TARGETS.items():
        ours, theirs = series[f"owlclaw {op}"], series[f"apscheduler {op}"]
        at_last = ours[-1] / theirs[-1]
        growth = ours[-1] / ours[0]
        rows.append(
            [
                op,
                f"{at_last:.2f}x (target <= {target:g}x)",
                "yes" if at_last <= target else "no",
                f"{growth:.2f}x (target <= {FLAT:g}x)",
                "yes" if growth <= FLAT else "no",
            ]
        )
    return Table(
        f"Targets at {xs[-1]:,} pending (owlclaw / APScheduler) and growth from {xs[0]:,}",
        ["operation", "owlclaw / APScheduler", "met", "owlclaw growth", "met"],
        rows,
    )


def run(sizes: Sizes, env: Env) -> Result:
    result = Result(
        NAME,
        TITLE,
        method=(
            "Each size is a fresh `MemoryScheduler` on a virtual clock (no worker) holding N pending "
            "tasks due between 1 hour and 30 days ahead; beside it, in the same process and run, an "
            "APScheduler 3 `MemoryJobStore` holding N date-trigger jobs. Then each operation is timed "
            f"one call at a time ({sizes.ops} calls, or N/2 when smaller): `schedule_task` vs "
            "`Job(...)` + `add_job`; `get_task_status` vs `lookup_job`; `cancel_task` vs `remove_job` "
            "on random pending ids; due-scan: that many tasks fall due within 10 s and one "
            "`advance()` fires them all (heap pop + queue), vs `get_due_jobs` + `remove_job` per due "
            "job (what APScheduler's scheduler loop does with a fired date job), reported per task. "
            "Times are medians per call in microseconds. owlclaw's operations include payload "
            "validation (schedule) and a copy of the payload (status); APScheduler stores the Python "
            "objects as they are. No OpenTelemetry tracer provider is set in this process (the API is "
            "installed, the SDK not configured), so owlclaw makes no spans, as in an app without "
            "tracing; run this benchmark on its own (`python -m benchmarks memory`): after the engine "
            "benchmarks in the same process, their engine, database and worker still run beside it."
        ),
    )
    rng = random.Random(5)
    medians: dict[str, dict[str, list[float]]] = {
        f"{who} {op}": {} for who in ("owlclaw", "apscheduler") for op in OPS
    }
    rows = []
    for pending in sizes.pending:
        ops = max(1, min(sizes.ops, pending // 2))
        ours = asyncio.run(_owlclaw(pending, ops, rng))
        theirs = _apscheduler(pending, ops, rng)
        for op in OPS:
            a, b = percentile(ours[op], 50), percentile(theirs[op], 50)
            medians[f"owlclaw {op}"].setdefault("y", []).append(a)
            medians[f"apscheduler {op}"].setdefault("y", []).append(b)
            p99 = (
                f"{us(percentile(ours[op], 99))} / {us(percentile(theirs[op], 99))}"
                if op != "due-scan"
                else "-"
            )
            rows.append([f"{pending:,}", op, us(a), us(b), ratio(a, b), p99])
    result.tables.append(
        Table(
            "Median cost per operation (microseconds)",
            [
                "pending",
                "operation",
                "owlclaw",
                "APScheduler",
                "owlclaw / APScheduler",
                "p99 owlclaw / APScheduler",
            ],
            rows,
        )
    )
    xs = list(sizes.pending)
    series = {k: [v * 1e6 for v in d["y"]] for k, d in medians.items()}
    result.tables.append(_targets_table(series, xs))
    result.charts.append(
        charts.lines(
            env.chart_dir / "memory_ops.png",
            "Cost per operation vs pending tasks (median)",
            xs,
            series,
            "pending tasks",
            "microseconds per operation",
            logx=True,
            logy=True,
            style={
                f"{who} {op}": (n, "-" if who == "owlclaw" else "--")
                for n, op in enumerate(OPS)
                for who in ("owlclaw", "apscheduler")
            },
        )
    )
    result.data = {"medians_us": series, "pending": xs}
    first, last = xs[0], xs[-1]
    for op in OPS:
        growth = series[f"owlclaw {op}"][-1] / series[f"owlclaw {op}"][0]
        aps_growth = series[f"apscheduler {op}"][-1] / series[f"apscheduler {op}"][0]
        result.headlines.append(
            f"memory {op}: owlclaw {series[f'owlclaw {op}'][-1]:.1f} µs at {last:,} pending "
            f"({growth:.2f}x its cost at {first:,}); APScheduler {series[f'apscheduler {op}'][-1]:.1f} µs "
            f"({aps_growth:.2f}x)"
        )
    return result
