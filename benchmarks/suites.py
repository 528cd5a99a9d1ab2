"""Benchmark 7: wall time of the conformance suite and of the unit tests, on memory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.env import Env
from benchmarks.report import Result, Table

NAME = "suites"
TITLE = "Unit and conformance suites on the memory backend"
NEEDS_ENGINE = False
ROOT = Path(__file__).resolve().parent.parent
SMOKE = "tests/unit/test_benchmarks_smoke.py"  # it runs the benchmarks: skip it, no recursion


@dataclass(frozen=True)
class Sizes:
    # (label, pytest arguments)
    suites: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("conformance suite (memory)", ("tests/unit/test_memory_conformance.py",)),
        ("all unit tests", ("tests/unit", f"--ignore={SMOKE}")),
    )
    timeout: float = 600.0  # per suite: a hung test must not hang the whole run


DEFAULT = Sizes()
QUICK = Sizes()


def _pytest(args: tuple[str, ...], timeout: float) -> tuple[float, str, int]:
    # -v names each test before it runs, so a timeout can say which one hung
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", "not integration", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = out.strip().splitlines()[-1:] or ["<no output>"]
        return time.perf_counter() - t0, f"timed out after {timeout:g} s, at: {last[0][:200]}", -1
    wall = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    summary = re.sub(r"=+", "", lines[-1] if lines else done.stderr.strip()[-200:]).strip()
    failed = [line.removeprefix("FAILED ").split(" - ")[0] for line in lines if line.startswith("FAILED ")]
    if failed:
        summary += "; failed: " + ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
    return wall, summary, done.returncode


def run(sizes: Sizes, env: Env) -> Result:
    result = Result(
        NAME,
        TITLE,
        method=(
            "`python -m pytest -v -m 'not integration'` in a subprocess, wall time including "
            f"interpreter start and collection. The benchmarks' own smoke test (`{SMOKE}`) is left out."
        ),
    )
    rows = []
    for label, args in sizes.suites:
        wall, summary, code = _pytest(args, sizes.timeout)
        rows.append(
            [label, " ".join(args), f"{wall:.1f} s", summary + ("" if code == 0 else f" (exit {code})")]
        )
        result.headlines.append(f"{label}: {wall:.1f} s ({summary})")
        result.data[label] = {"exit": code, "summary": summary}
        if code != 0:
            result.error = f"pytest {' '.join(args)} exited {code}: {summary}"
    result.tables.append(
        Table("Suite wall time", ["suite", "pytest arguments", "wall time", "pytest says"], rows)
    )
    return result
