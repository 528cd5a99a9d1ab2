"""owlclaw, the raw SDK and Hatchet's own Go load tester at 10-200 runs/s, on one engine.

At each asked rate three paths run one after the other on the shared engine:
owlclaw ``run_task`` and the raw SDK's ``aio_run(wait_for_result=False)`` (both
through ``throughput._side``, served by the bench worker), then Hatchet's
``hatchet-loadtest`` (built from the engine's version by
``.ci/install-loadtest.sh``), which pushes events and runs the triggered task in
its own in-process Go worker. CPU is read from ``/proc`` for the engine,
PostgreSQL (postmaster and backends), the client and the worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import throughput
from benchmarks.cpu import cpu_delta, snapshot, tree_cpu
from benchmarks.engine import WORKER_SLOTS, EngineSession, terminate
from benchmarks.env import Env
from benchmarks.report import Result, Table
from benchmarks.stats import ms, summarize
from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION, engine_bin_dir

NAME = "loadtest"
TITLE = "owlclaw, the raw SDK and Hatchet's Go load tester, 10 to 200 runs/s"
NEEDS_ENGINE = True
BINARY = "hatchet-loadtest"
PATHS = ("owlclaw", "raw", "go")


@dataclass(frozen=True)
class Sizes:
    rates: tuple[int, ...] = (10, 50, 100, 200)  # runs per second asked of each path
    seconds: float = 10.0  # sending time per path and rate
    settle: float = 3.0  # pause between paths
    emit_workers: int = 50  # the Go tester's concurrent push goroutines (its --emitWorkers)
    go_start_timeout: float = 120.0  # its registration + its fixed 10 s pause before emitting
    paths: tuple[str, ...] = PATHS  # which of owlclaw, raw, go to run (the smoke test runs go alone)


DEFAULT = Sizes()
QUICK = Sizes(rates=(10, 50), seconds=2.0, settle=1.0)


def loadtest_binary() -> Path:
    """The built load tester, or an error that says how to build it."""
    path = engine_bin_dir() / BINARY
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"Hatchet's load tester {ENGINE_VERSION} is not built: {path} is missing; "
            "run `bash .ci/install-loadtest.sh`"
        )
    return path


# --- the Go load tester --------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"executing (\d+) took (\S+)")
_PUSHED = re.compile(r"pushed event \d+ to \S+ took")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|μs|ns|h|m|s)")


def go_duration(text: str) -> float:
    """Seconds in a Go ``time.Duration`` string (``1m2.5s``, ``45.1ms``, ``850µs``)."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNIT[u] for n, u in parts)


@dataclass
class _GoLog:
    """What the tester's log said so far; filled by a reader thread."""

    pids: dict[str, int]
    go_pid: int
    emit_at: float | None = None
    done_at: float | None = None
    pushed: int = 0
    took: dict[int, float] = field(default_factory=dict)  # event id -> created -> step start
    start_at: dict[int, float] = field(default_factory=dict)  # event id -> when its line arrived
    executions: int = 0
    cpu_before: dict[str, float] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)

    def read(self, stream: Any) -> None:
        for raw in stream:
            line = _ANSI.sub("", raw.decode(errors="replace")).rstrip()
            now = time.time()
            self.tail = [*self.tail[-29:], line]
            if match := _EXECUTING.search(line):
                key = int(match.group(1))
                self.executions += 1
                self.took.setdefault(key, go_duration(match.group(2)))
                self.start_at.setdefault(key, now)
            elif _PUSHED.search(line):
                self.pushed += 1
            elif self.emit_at is None and "emitting with" in line:
                # the ticker starts right after this line: CPU from here on is the load's
                self.cpu_before = {**snapshot(self.pids), "go": tree_cpu(self.go_pid)}
                self.emit_at = now
            elif "pushed per event key" in line:
                # logged once every push returned (its "done emitting" line comes before the last pushes)
                self.done_at = now


def _wait(condition: Any, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(0.1)
    return True


def _go_side(session: EngineSession, rate: int, sizes: Sizes) -> dict[str, Any]:
    assert session.conn is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
    # its own namespace: its workflow and event key meet nothing left by another run
    env.update(session.conn.as_env(), HATCHET_CLIENT_NAMESPACE=f"lt-{uuid.uuid4().hex[:8]}")
    command = [
        str(loadtest_binary()),
        "loadtest",
        f"--events={rate}",
        f"--duration={sizes.seconds:g}s",
        f"--emitWorkers={sizes.emit_workers}",
        f"--slots={WORKER_SLOTS}",
        "--level=info",  # the per-run "executing N took D" lines are info
    ]
    proc = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log = _GoLog(pids=session.pids(), go_pid=proc.pid)
    reader = threading.Thread(target=log.read, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        if not _wait(lambda: log.emit_at is not None, sizes.go_start_timeout, proc):
            raise RuntimeError(
                f"{BINARY} did not start emitting within {sizes.go_start_timeout:g} s "
                f"(exit code {proc.poll()}); its last lines:\n" + "\n".join(log.tail)
            )
        drain = 60.0 + sizes.seconds
        _wait(lambda: log.done_at is not None, sizes.seconds + 30.0, proc)
        _wait(lambda: log.done_at is not None and len(log.took) >= log.pushed, drain, proc)
        cpu_after = {**snapshot(log.pids), "go": tree_cpu(proc.pid)}
        if proc.poll() not in (None, 0) and (log.done_at is None or len(log.took) < log.pushed):
            raise RuntimeError(
                f"{BINARY} exited with {proc.returncode} before its runs were done; its last lines:\n"
                + "\n".join(log.tail)
            )
    finally:
        terminate(proc, grace=10)  # a running one would idle until its own long timeout
        reader.join(timeout=10)
    assert log.emit_at is not None
    starts = sorted(log.start_at.values())
    span = (starts[-1] - log.emit_at) if starts else 0.0
    cpu = cpu_delta(log.cpu_before, cpu_after)
    return {
        "n": log.pushed,
        "started": len(log.took),
        "duplicates": log.executions - len(log.took),
        "latency": list(log.took.values()),
        "start_rate": len(starts) / span if span > 0 else 0.0,
        "cpu": {"engine": cpu["engine"], "postgres": cpu["postgres"], "client": cpu["go"]},
        "errors": [],
    }


# --- the Python paths ----------------------------------------------------------


async def _python_side(
    c: Any, session: EngineSession, path: str, rate: int, seconds: float
) -> dict[str, Any]:
    pids = session.pids()
    sent: dict[str, float] = {}
    before, client_before = snapshot(pids), _own_cpu()

    def on_sent() -> None:
        sent["client"] = _own_cpu() - client_before

    found = await throughput._side(c, session, path, rate, seconds, on_sent=on_sent)
    found["cpu"] = {**cpu_delta(before, snapshot(pids)), **sent}
    return found


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


# --- the benchmark -------------------------------------------------------------


def run(sizes: Sizes, env: Env) -> Result:
    unknown = set(sizes.paths) - set(PATHS)
    if unknown:
        raise ValueError(f"unknown load-test path(s) {sorted(unknown)}; choose from {', '.join(PATHS)}")
    loadtest_binary()  # fail before any run when it is not built
    session = env.engine()

    idle: dict[str, float] = {}  # CPU seconds spent in the pauses between paths, and their length

    async def pause() -> None:
        pids = session.pids()
        before, t0 = snapshot(pids), time.monotonic()
        await asyncio.sleep(sizes.settle)
        for name, spent in {**cpu_delta(before, snapshot(pids)), "seconds": time.monotonic() - t0}.items():
            idle[name] = idle.get(name, 0.0) + spent

    async def main() -> dict[int, dict[str, dict[str, Any]]]:
        found: dict[int, dict[str, dict[str, Any]]] = {}
        async with session.clients() as c:
            for path in sizes.paths:
                if path != "go":
                    await throughput._side(c, session, path, 10, 1.0)  # warm-up, not reported
            for rate in sizes.rates:
                found[rate] = {}
                for path in sizes.paths:
                    await pause()
                    if path == "go":
                        found[rate][path] = await asyncio.to_thread(_go_side, session, rate, sizes)
                    else:
                        found[rate][path] = await _python_side(c, session, path, rate, sizes.seconds)
        return found

    found = asyncio.run(main())
    result = Result(NAME, TITLE, method=_METHOD.format(s=sizes))
    rows = []
    for rate, paths in found.items():
        for path, d in paths.items():
            s = summarize(d["latency"])
            started = max(d["started"], 1)
            cpu = {k: f"{v * 1000 / started:.1f}" for k, v in d["cpu"].items()}
            missing = d["n"] - d["started"]
            rows.append(
                [
                    f"{rate}/s",
                    _LABELS[path],
                    f"{d['started']}/{d['n']}" + (f" ({missing} never started)" if missing > 0 else ""),
                    f"{d['start_rate']:.0f}/s",
                    ms(s.p50),
                    ms(s.p99),
                    cpu["engine"],
                    cpu["postgres"],
                    cpu["client"],
                    cpu.get("worker", "(in client)"),
                ]
            )
            result.headlines.append(
                f"{rate}/s asked, {_LABELS[path]}: {d['start_rate']:.0f}/s started, "
                f"p50 {ms(s.p50)} ms, p99 {ms(s.p99)} ms"
            )
            if d["errors"]:
                result.notes.append(
                    f"{rate}/s {path}: {len(d['errors'])} calls failed, e.g. `{d['errors'][0]}`."
                )
            if d.get("duplicates"):
                result.notes.append(f"{rate}/s go: {d['duplicates']} events ran more than once.")
    if idle.get("seconds"):
        per_second = ", ".join(
            f"{name} {idle[name] * 1000 / idle['seconds']:.0f} ms/s"
            for name in ("engine", "postgres", "worker")
        )
        result.notes.append(
            f"CPU while idle (the {idle['seconds']:.0f} s of pauses between paths, no runs): {per_second}. "
            "At 10 runs/s this idle work is most of the CPU per run above."
        )
    data: dict[Any, Any] = {  # keyed by the asked rate, as latency's
        rate: {path: {"sent": d["n"], "started": d["started"]} for path, d in paths.items()}
        for rate, paths in found.items()
    }
    result.data = data
    result.tables.append(
        Table(
            "Per asked rate and path: starts, enqueue-to-start (ms) and CPU per run started (ms)",
            [
                "asked",
                "path",
                "started/sent",
                "start rate",
                "p50",
                "p99",
                "engine",
                "PostgreSQL",
                "client",
                "worker",
            ],
            rows,
        )
    )
    return result


_LABELS = {"owlclaw": "owlclaw `run_task`", "raw": "raw SDK `aio_run`", "go": "Go load tester"}

_METHOD = (
    "At each asked rate, three paths one after the other, {s.settle:g} s apart, each sending for "
    "{s.seconds:g} s on the same engine: owlclaw `run_task` and the raw SDK's "
    "`aio_run(wait_for_result=False)` trigger `bench_probe` on the bench worker (latency = the task's "
    "`utc_now()` at start minus the client's just before the call); then Hatchet's own "
    "`hatchet-loadtest loadtest --events=<rate> --emitWorkers={s.emit_workers} --slots=200` built from "
    "the engine's version, which pushes one event per tick from {s.emit_workers} goroutines and runs "
    "the task the event triggers in its own Go worker, in the same process. Its latency is the one it "
    "logs per run (`executing N took D`): from the event's creation at the tick (before it waits for "
    "a free push goroutine) to the start of the task's step in its worker, so it covers the push, the "
    "engine's event-to-run matching, queueing, assignment and dispatch. Start rate = runs started / "
    "(last start - first enqueue); for the Go tester, when its log lines arrived. CPU per run = "
    "utime+stime from `/proc` (process and descendants: PostgreSQL's backends included) over the "
    "sending and draining, divided by the runs started; it includes each process's idle work, which "
    "dominates at 10/s. The Go tester's client and worker are one process (in the client column); "
    "the Python client's CPU is this process's during the sending only."
)
