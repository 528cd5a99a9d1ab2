"""The in-memory benchmarks stay runnable: each runs with tiny sizes and reports.

No timing is asserted: a benchmark measures, it does not judge. What is asserted
is what a reader of docs/benchmarks.md relies on: every benchmark produces its
tables and charts, the counts it reports are right, and the report names the
versions it ran with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("apscheduler", reason="pip install -e '.[bench]'")
pytest.importorskip("matplotlib", reason="pip install -e '.[bench]'")

from benchmarks import memory_ops, suites, virtual_time
from benchmarks.__main__ import main
from benchmarks.env import Env
from benchmarks.report import machine_facts, write_markdown
from benchmarks.runner import BENCHMARKS, run_one


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(chart_dir=tmp_path / "charts", workdir=tmp_path / "work")


def test_memory_ops_measures_every_operation_at_every_size(env: Env) -> None:
    result = run_one(memory_ops, env, sizes=memory_ops.Sizes(pending=(20, 200), ops=5))
    assert result.error is None
    rows = result.tables[0].rows
    assert [(r[0], r[1]) for r in rows] == [(n, op) for n in ("20", "200") for op in memory_ops.OPS]
    assert all(v > 0 for series in result.data["medians_us"].values() for v in series)
    assert (env.chart_dir / "memory_ops.png").stat().st_size > 0


def test_virtual_time_runs_every_cron_tick_and_delayed_task(env: Env) -> None:
    sizes = virtual_time.Sizes(days=0.25, delayed=30, second_days=0.002, drain=(20, 40))
    result = run_one(virtual_time, env, sizes=sizes)
    assert result.error is None
    assert result.data["cron runs"] == 360 == result.data["expected cron runs"]
    assert result.data["delayed runs"] == 30
    assert result.data["still pending"] == 0
    assert result.data["per-second runs"] == 172 == result.data["expected per-second runs"]
    assert list(result.data["drain seconds"]) == [20, 40]


def test_suites_reports_each_pytest_summary_and_a_failure_without_raising(env: Env) -> None:
    tiny = suites.Sizes(
        suites=(
            ("errors and cron", ("tests/unit/test_errors_and_cron.py",)),
            ("nothing", ("tests/unit/no_such_file.py",)),
        )
    )
    result = run_one(suites, env, sizes=tiny)
    assert result.data["errors and cron"]["exit"] == 0
    assert "passed" in result.data["errors and cron"]["summary"]
    assert result.data["nothing"]["exit"] != 0
    assert result.error is not None and "no_such_file" in result.error
    assert [row[0] for row in result.tables[0].rows] == ["errors and cron", "nothing"]


def test_report_has_every_table_chart_version_and_headline(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    env.chart_dir = out.parent / out.stem  # as __main__ does: charts beside the report
    results = [
        run_one(memory_ops, env, sizes=memory_ops.Sizes(pending=(20, 40), ops=5)),
        run_one(
            virtual_time, env, sizes=virtual_time.Sizes(days=0.1, delayed=5, second_days=0.001, drain=(5,))
        ),
    ]
    facts = machine_facts()
    write_markdown(
        results, out, facts=facts, sizes_label="tiny", command="test", intro="intro", closing=["bye"]
    )
    text = out.read_text()
    for key in ("CPU", "cores", "RAM", "Python", "PostgreSQL", "Hatchet engine", "hatchet-sdk"):
        assert f"| {key} | {facts[key]} |" in text
    assert "v0.105.0" in facts["Hatchet engine"]
    for result in results:
        for table in result.tables:
            assert table.title in text
        for line in result.headlines:
            assert f"- {line}" in text
    assert "](benchmarks/memory_ops.png)" in text
    assert (out.parent / "benchmarks" / "memory_ops.png").is_file()


def test_an_engine_that_cannot_start_is_reported_once_per_benchmark_with_its_error(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWLCLAW_ENGINE_CACHE", str(tmp_path / "no-engine-here"))
    first = run_one(BENCHMARKS["overhead"], env)
    second = run_one(BENCHMARKS["latency"], env)
    assert first.error is not None and "EngineNotInstalledError" in first.error
    assert "no-engine-here" in first.error and "install-engine.sh" in first.error
    assert second.error is not None and "could not be started" in second.error
    out = tmp_path / "report.md"
    write_markdown([first, second], out, facts={}, sizes_label="x", command="x", intro="x", closing=[])
    assert out.read_text().count("**This benchmark failed:**") == 2


def test_every_benchmark_of_the_issue_is_listed() -> None:
    assert list(BENCHMARKS) == [
        "overhead",
        "latency",
        "throughput",
        "loadtest",
        "timers",
        "seed",
        "memory",
        "virtual-time",
        "suites",
    ]
    for module in BENCHMARKS.values():
        assert module.DEFAULT is not None and module.QUICK is not None


def test_an_unknown_benchmark_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-benchmark", "--out", "/nonexistent/x.md"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) no-such-benchmark" in err and "memory" in err
