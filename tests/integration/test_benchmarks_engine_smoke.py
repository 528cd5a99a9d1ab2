"""The engine benchmarks stay runnable: tiny sizes, on the benchmarks' own engine.

The benchmarks start their own PostgreSQL, hatchet-lite and worker process
(``benchmarks.engine.EngineSession``), exactly as ``python -m benchmarks``
does, so this also covers that start-up path. No timing is asserted; what is
asserted is that every run the benchmarks send is executed, once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="pip install -e '.[bench]'")

from benchmarks import latency, loadtest, overhead, seed, throughput, timers
from benchmarks.env import Env
from benchmarks.runner import run_one

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_engine_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("bench")
    bench_env = Env(chart_dir=root / "charts", workdir=root / "work")
    try:
        yield bench_env
    finally:
        bench_env.close()


def test_overhead_times_every_operation_on_both_sides(env: Env) -> None:
    result = run_one(overhead, env, sizes=overhead.Sizes(calls=4, warmup=1, cancel_batch=3))
    assert result.error is None, env.engine().worker_log()
    assert set(result.data) == set(overhead.WHAT)
    assert all(n == {"owlclaw": 4, "raw": 4} for n in result.data.values())
    assert Path(env.chart_dir / "overhead.png").is_file()


def test_latency_sees_every_run_start_on_both_sides(env: Env) -> None:
    result = run_one(latency, env, sizes=latency.Sizes(rates=(10,), seconds=1.0))
    assert result.error is None
    assert result.data == {10: {"sent": 10, "started": {"owlclaw": 5, "raw": 5}, "errors": 0}}


def test_throughput_sees_every_run_start_on_both_sides(env: Env) -> None:
    result = run_one(throughput, env, sizes=throughput.Sizes(rate=10, seconds=1.0, settle=0.1))
    assert result.error is None
    assert result.data == {side: {"sent": 10, "started": 10} for side in ("owlclaw", "raw")}


def test_timers_collect_a_sample_of_every_kind(env: Env) -> None:
    result = run_one(timers, env, sizes=timers.Sizes(delays=(1,), rounds=1, gap=0.1))
    assert result.error is None
    assert result.data == {f"{kind} 1": 1 for kind in timers.KINDS}


def test_seed_burst_runs_each_task_exactly_once(env: Env) -> None:
    result = run_one(seed, env, sizes=seed.Sizes(burst=10, parallel=3, work_seconds=0.5))
    assert result.error is None
    assert result.data["executed once"] == 10
    assert result.data["more than once"] == result.data["never"] == 0
    # the same burst served by the raw SDK's worker, the peer of the ratio
    assert result.data["raw SDK worker"] == {"once": 10, "twice": 0, "never": 0}
    assert result.data["parallel states"] == ["succeeded"] * 3


def test_the_go_load_tester_runs_on_the_benchmarks_engine(env: Env) -> None:
    try:
        loadtest.loadtest_binary()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):  # CI installs it (scripts/test-all.sh): missing there is a failure
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    # the Python paths are throughput's, covered above: the Go tester alone keeps this short
    sizes = loadtest.Sizes(rates=(10,), seconds=1.0, settle=0.1, paths=("go",))
    result = run_one(loadtest, env, sizes=sizes)
    assert result.error is None, result.error
    go = result.data[10]["go"]
    # at most 10 ticks in 1 s; a loaded machine makes its ticker drop some
    assert 1 <= go["sent"] <= 10 and go["started"] == go["sent"], go
    assert not any("more than once" in note for note in result.notes), result.notes
