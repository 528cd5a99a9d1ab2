"""The benchmark list, and running one benchmark so that a failure is reported, not raised."""

from __future__ import annotations

import time
import traceback
from types import ModuleType

from benchmarks import latency, loadtest, memory_ops, overhead, seed, suites, throughput, timers, virtual_time
from benchmarks.env import Env
from benchmarks.report import Result

__all__ = ["BENCHMARKS", "run_one"]

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (overhead, latency, throughput, loadtest, timers, seed, memory_ops, virtual_time, suites)
}


def run_one(module: ModuleType, env: Env, *, quick: bool = False, sizes: object = None) -> Result:
    """Run one benchmark module; a failure becomes the result's ``error``, not an exception."""
    chosen = sizes if sizes is not None else (module.QUICK if quick else module.DEFAULT)
    t0 = time.perf_counter()
    try:
        result: Result = module.run(chosen, env)
    except Exception as exc:  # noqa: BLE001 - one failed benchmark must not lose the others
        traceback.print_exc()
        result = Result(module.NAME, module.TITLE, error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - t0
    return result
