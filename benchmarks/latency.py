"""Benchmark 2: enqueue-to-start latency at steady rates, through owlclaw and the raw SDK."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks import charts
from benchmarks.engine import Clients, EngineSession
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import ms, ratio, summarize
from owlclaw.scheduler.clock import utc_now

NAME = "latency"
TITLE = "Enqueue-to-start latency at steady rates"
NEEDS_ENGINE = True
SIDES = ("owlclaw", "raw")


@dataclass(frozen=True)
class Sizes:
    rates: tuple[int, ...] = (10, 50, 100)  # runs per second, both sides together
    seconds: float = 10.0  # how long each rate is held


DEFAULT = Sizes()
QUICK = Sizes(seconds=3.0)


async def _at_rate(c: Clients, session: EngineSession, rate: int, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n = max(2, int(rate * seconds))
    tag = uuid.uuid4().hex[:6]
    enqueued: dict[str, float] = {}
    side_of: dict[str, str] = {}
    call_time: dict[str, float] = {}
    errors: list[str] = []

    async def fire(side: str, key: str) -> None:
        enqueued[key] = utc_now().timestamp()
        t0 = loop.time()
        try:
            if side == "owlclaw":
                await c.owlclaw.run_task("bench_probe", {"key": key})
            else:
                await c.raw_tasks["bench_probe"].aio_run({"key": key}, wait_for_result=False)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            errors.append(f"{type(exc).__name__}: {exc}")
        call_time[key] = loop.time() - t0

    start = loop.time()
    pending = []
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        side = SIDES[i % 2]  # alternate call by call: the engine sees `rate` runs per second in all
        key = f"lat-{rate}-{tag}-{i}"
        side_of[key] = side
        pending.append(asyncio.create_task(fire(side, key)))
    await asyncio.gather(*pending)
    # the rate the trigger calls completed at: the client can fall behind the pace
    returned = {k: enqueued[k] + call_time[k] for k in enqueued}
    achieved = n / max(max(returned.values()) - min(enqueued.values()), 1e-9)
    probes = await session.wait_probes(set(side_of), timeout=60 + seconds)
    latency: dict[str, list[float]] = {s: [] for s in SIDES}
    calls: dict[str, list[float]] = {s: [] for s in SIDES}
    after_call: dict[str, list[float]] = {s: [] for s in SIDES}
    for key, side in side_of.items():
        calls[side].append(call_time[key])
        if key in probes:
            latency[side].append(probes[key][0]["started"] - enqueued[key])
            after_call[side].append(probes[key][0]["started"] - returned[key])
    return {
        "n": n,
        "achieved": achieved,
        "latency": latency,
        "calls": calls,
        "after_call": after_call,
        "errors": errors,
    }


def run(sizes: Sizes, env: Env) -> Result:
    session = env.engine()

    async def main() -> dict[int, dict[str, Any]]:
        async with session.clients() as c:
            await _at_rate(c, session, 10, 1.0)  # warm-up, not reported
            return {rate: await _at_rate(c, session, rate, sizes.seconds) for rate in sizes.rates}

    found = asyncio.run(main())
    result = Result(
        NAME,
        TITLE,
        method=(
            f"For each rate, runs of `bench_probe` are triggered at a steady pace for {sizes.seconds:g} s "
            "(like Hatchet's own load test), alternating owlclaw `run_task` and raw `aio_run` call by "
            "call, so each side gets half the rate and the engine sees the full rate. The client "
            "notes the time just before the call; the task notes `utc_now()` when it starts (same "
            "machine, same clock). Latency = start minus enqueue. One worker process with "
            f"{200} slots serves both sides."
        ),
    )
    rows = []
    series: dict[str, list[float]] = {}
    for rate, data in found.items():
        lat = data["latency"]
        for side in SIDES:
            s = summarize(lat[side])
            c = summarize(data["calls"][side])
            missing = data["n"] // 2 + (data["n"] % 2 if side == "owlclaw" else 0) - s.n
            rows.append(
                [
                    f"{rate}/s ({data['achieved']:.0f}/s done)",
                    side,
                    str(s.n) + (f" ({missing} never started)" if missing else ""),
                    ms(s.mean),
                    ms(s.p50),
                    ms(s.p95),
                    ms(s.p99),
                    ms(c.p50),
                    ms(summarize(data["after_call"][side]).p50),
                ]
            )
            series[f"{rate}/s {side}"] = [v * 1000 for v in lat[side]]
        o, r = summarize(lat["owlclaw"]), summarize(lat["raw"])
        result.headlines.append(
            f"latency at {rate}/s: owlclaw p50 {ms(o.p50)} ms vs raw {ms(r.p50)} ms ({ratio(o.p50, r.p50)}); "
            f"p99 {ms(o.p99)} vs {ms(r.p99)} ms"
        )
        if data["errors"]:
            result.notes.append(
                f"At {rate}/s, {len(data['errors'])} calls failed, e.g. `{data['errors'][0]}`."
            )
    result.data = {
        rate: {
            "sent": d["n"],
            "started": {side: len(d["latency"][side]) for side in SIDES},
            "errors": len(d["errors"]),
        }
        for rate, d in found.items()
    }
    result.notes.append(
        "The rate column gives the pace asked for and the rate at which trigger calls completed. "
        "The raw SDK sends each trigger through `asyncio.to_thread` (it wraps its blocking gRPC stub), "
        "so its calls share the event loop's default thread pool, and this machine's two cores with the "
        "engine, PostgreSQL and the worker: when the trigger call p50 grows, the client is the "
        "bottleneck, not the engine. owlclaw gathers the calls made meanwhile into bulk requests on an "
        "asyncio channel (`batch_triggers`, docs/hatchet.md). The last column (start minus the moment "
        "the trigger call returned; negative when the run started first) is the engine's part."
    )
    result.tables.append(
        Table(
            "Enqueue-to-start latency (ms)",
            [
                "rate",
                "side",
                "runs",
                "mean",
                "p50",
                "p95",
                "p99",
                "trigger call p50",
                "start after call returned p50",
            ],
            rows,
        )
    )
    result.charts.append(
        charts.cdf(
            env.chart_dir / "latency.png",
            "Enqueue-to-start latency (dashed: raw SDK)",
            series,
            "milliseconds (log scale)",
            logx=True,
            style={
                f"{rate}/s {side}": (n, "-" if side == "owlclaw" else "--")
                for n, rate in enumerate(found)
                for side in SIDES
            },
        )
    )
    return result
