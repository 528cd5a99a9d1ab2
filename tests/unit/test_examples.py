"""The examples in examples/ run, and do what their docs say, on the memory backend.

Each example is imported fresh from its file, so its module-level
``create_scheduler()`` reads the environment the test set.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.registry import create_scheduler

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

Loader = Callable[[str], ModuleType]


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Loader:
    """``load_example("basic_task")``: the example module, imported fresh on memory."""
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "memory")
    monkeypatch.chdir(tmp_path)  # no ./owlclaw.yaml from the developer's cwd

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"owlclaw_example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert isinstance(module.scheduler, MemoryScheduler)
        return module

    return load


def _virtual(module: ModuleType, start: datetime) -> MemoryScheduler:
    """A virtual-clock scheduler with the example's tasks: how an agent's tests run them."""
    scheduler = MemoryScheduler(clock=VirtualClock(start=start))
    scheduler.add_tasks(module.scheduler.tasks.values())
    return scheduler


# basic_task


async def test_basic_task_runs_now_later_and_cancels(
    load_example: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = await load_example("basic_task").main(delay_seconds=0.5, timeout=10)

    now, later, cancelled = outcome["now"], outcome["later"], outcome["cancelled"]
    assert now.state is TaskState.SUCCEEDED
    assert now.result == {"ticker": "AAPL", "summary": "nothing unusual in today's AAPL headlines"}
    assert later.state is TaskState.SUCCEEDED
    assert later.result["ticker"] == "NVDA"
    assert later.started_at is not None and later.scheduled_at is not None
    assert later.started_at >= later.scheduled_at
    assert later.scheduled_at - now.scheduled_at >= timedelta(seconds=0.4)
    assert cancelled.state is TaskState.CANCELLED
    assert cancelled.attempts == 0 and cancelled.started_at is None
    out = capsys.readouterr().out
    assert "separate worker" not in out  # memory runs its worker in-process
    assert "TSLA: cancelled, never ran" in out


def test_basic_task_runs_as_a_script() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLCLAW_", "HATCHET_"))}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "examples/basic_task.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15
    lines = result.stdout.splitlines()
    assert lines[0].startswith("queued summarize_news for AAPL to run now")
    assert "AAPL: succeeded after 1 attempt(s): nothing unusual in today's AAPL headlines" in lines
    assert "NVDA: succeeded after 1 attempt(s): nothing unusual in today's NVDA headlines" in lines
    assert "TSLA: cancelled, never ran" in lines


def test_an_example_is_a_worker_app_from_the_repo_root() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLCLAW_", "HATCHET_"))}
    worker = subprocess.Popen(
        [sys.executable, "-m", "owlclaw.scheduler.cli", "worker", "examples.durable_timer:scheduler"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert worker.stdout is not None
        for line in worker.stdout:
            lines.append(line)
            if "SIGTERM drains and stops" in line:  # logged once its signal handlers are set
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=60), "".join(lines)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        reader.join(timeout=10)
    assert worker.returncode == 0, "".join(lines)


# cron_task


async def test_cron_task_fires_then_removes_its_cron(
    load_example: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_example("cron_task")
    runs = await module.main(fires=2, expression="* * * * * *", timeout=10)

    assert [r.state for r in runs] == [TaskState.SUCCEEDED, TaskState.SUCCEEDED]
    assert [r.result for r in runs] == [{"book": "demo", "within_limits": True}] * 2
    assert runs[0].scheduled_at is not None and runs[1].scheduled_at is not None
    assert runs[1].scheduled_at - runs[0].scheduled_at == timedelta(seconds=1)
    async with module.scheduler:
        left = await module.scheduler.list_crons()
    assert [(c.task_name, c.expression) for c in left] == [("check_positions", "* 9-16 * * 1-5")]
    assert "removed the demo cron" in capsys.readouterr().out


async def test_cron_task_checks_every_minute_in_trading_hours_only(load_example: Loader) -> None:
    friday = datetime(2030, 1, 11, tzinfo=UTC)
    scheduler = _virtual(load_example("cron_task"), start=friday)
    async with scheduler:
        await scheduler.start_worker()
        await scheduler.advance(2 * 24 * 3600)  # Friday and Saturday
        runs = await scheduler.list_tasks("check_positions", limit=10_000)
    times = sorted(r.scheduled_at for r in runs if r.scheduled_at)
    assert len(runs) == len(times) == 8 * 60  # Friday 09:00-16:59, every minute; none on Saturday
    assert (times[0], times[-1]) == (friday.replace(hour=9), friday.replace(hour=16, minute=59))
    assert all(r.result == {"book": "main", "within_limits": True} for r in runs)


# self_scheduling_agent


async def test_agent_schedules_its_next_run_and_carries_its_focus(
    load_example: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = await load_example("self_scheduling_agent").main(max_runs=3, delay_seconds=0.3, timeout=10)

    assert [r.state for r in runs] == [TaskState.SUCCEEDED] * 3
    assert [r.payload["run"] for r in runs] == [1, 2, 3]
    assert [r.payload["focus"] for r in runs] == [
        "scan the watchlist",
        "re-check NVDA after the open",
        "write the end-of-day summary",
    ]
    assert {r.payload["agent_id"] for r in runs} == {"agent-7"}
    for run, following in itertools.pairwise(runs):
        # the id schedule_task returned inside a run is the next run's id
        assert run.result["next"]["task_id"] == following.id
        assert run.result["next"]["focus"] == following.payload["focus"]
        assert following.scheduled_at - run.started_at >= timedelta(seconds=0.3)
    assert runs[-1].result["next"] is None
    assert "done, the agent stopped" in capsys.readouterr().out


async def test_agent_with_production_delays_in_virtual_time(load_example: Loader) -> None:
    module = load_example("self_scheduling_agent")
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    scheduler = _virtual(module, start=start)
    payload = {
        "agent_id": "a1",
        "focus": "scan the watchlist",
        "run": 1,
        "max_runs": 4,
        "delay_seconds": 1800,
    }
    async with scheduler:
        await scheduler.start_worker()
        await scheduler.run_task("agent_run", payload)
        await scheduler.run_until_idle()
        runs = list(reversed(await scheduler.list_tasks("agent_run")))
    assert [r.scheduled_at for r in runs] == [start + timedelta(minutes=30 * i) for i in range(4)]
    assert [r.payload["focus"] for r in runs][-1] == "scan the watchlist"  # the plan wraps around
    assert runs[-1].result["next"] is None


# durable_timer


async def test_durable_timer_sleeps_then_checks(load_example: Loader) -> None:
    started = time.monotonic()
    info = await load_example("durable_timer").main(agent_id="a9", sleep_seconds=1.0, timeout=10)

    assert time.monotonic() - started >= 1.0
    assert info.state is TaskState.SUCCEEDED
    assert info.result == {"agent_id": "a9", "slept_seconds": 1.0, "healthy": True}
    assert info.started_at is not None and info.finished_at is not None
    assert info.finished_at - info.started_at >= timedelta(seconds=1.0)


async def test_durable_timer_production_sleep_in_virtual_time(load_example: Loader) -> None:
    scheduler = _virtual(load_example("durable_timer"), start=datetime(2030, 1, 1, tzinfo=UTC))
    async with scheduler:
        await scheduler.start_worker()
        task_id = await scheduler.run_task("heartbeat", {"agent_id": "a1"})  # default: 30 minutes
        await scheduler.advance(30 * 60 - 1)
        assert (await scheduler.get_task_status(task_id)).state is TaskState.RUNNING
        await scheduler.advance(1)
        info = await scheduler.get_task_status(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.result == {"agent_id": "a1", "slept_seconds": 1800.0, "healthy": True}


# configuration


def test_the_examples_config_selects_hatchet_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLCLAW_CONFIG", str(EXAMPLES / "owlclaw.yaml"))
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    monkeypatch.delenv("HATCHET_MODE", raising=False)
    assert isinstance(create_scheduler(), MemoryScheduler)

    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "hatchet")
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", "not-a-real-token")
    monkeypatch.setenv("HATCHET_CLIENT_HOST_PORT", "127.0.0.1:7077")
    scheduler = create_scheduler()
    assert isinstance(scheduler, HatchetScheduler)
    assert scheduler.config.mode == "lite" and scheduler.namespace == "owlclaw-examples"
    assert "not-a-real-token" not in repr(scheduler.config)
