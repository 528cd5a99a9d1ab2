"""The examples in examples/ on the real Hatchet engine, the way their docs say
to run them: ``owlclaw-scheduler worker examples.X:scheduler`` in a process of
its own (cwd = the repository root), and the example's ``main()`` here, both
configured by an owlclaw.yaml through ``OWLCLAW_CONFIG``. Each test has its own
namespace.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import WorkerProcess, worker_command

from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until
from owlclaw.scheduler.registry import create_scheduler

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class HatchetExample:
    """One example module configured for the engine, and its worker processes."""

    def __init__(self, engine: Any, name: str, directory: Path) -> None:
        self.engine, self.name, self.directory = engine, name, directory
        self.config_path = directory / "owlclaw.yaml"
        self.workers: list[WorkerProcess] = []
        spec = importlib.util.spec_from_file_location(
            f"owlclaw_example_{name}_hatchet", REPO / "examples" / f"{name}.py"
        )
        assert spec is not None and spec.loader is not None
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        assert self.module.scheduler.backend_name == "hatchet"

    def start_worker(self) -> WorkerProcess:
        """``owlclaw-scheduler worker examples.<name>:scheduler`` from the repository root."""
        log_path = self.directory / f"worker{len(self.workers)}.log"
        command = worker_command(f"examples.{self.name}:scheduler")
        worker = WorkerProcess(command, self.engine.worker_env(self.config_path), log_path, cwd=REPO)
        self.workers.append(worker)
        return worker.start()

    def logs(self) -> str:
        return "\n".join(f"--- worker {i}\n{w.log_tail()}" for i, w in enumerate(self.workers))


@pytest.fixture
def hatchet_example(
    hatchet_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], HatchetExample]]:
    """``hatchet_example("basic_task")``: the example imported on the engine, in a fresh namespace."""
    namespace = f"owlclaw-ex-{uuid.uuid4().hex[:10]}"
    config_path = tmp_path / "owlclaw.yaml"
    section = hatchet_engine.settings(namespace=namespace)  # the token stays in the environment
    config_path.write_text(yaml.safe_dump({"scheduler": {"backend": "hatchet", "hatchet": section}}))
    for name in list(os.environ):
        if name.startswith("HATCHET_CLIENT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", hatchet_engine.token)
    monkeypatch.setenv("OWLCLAW_CONFIG", str(config_path))
    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "hatchet")
    made: list[HatchetExample] = []

    def make(name: str) -> HatchetExample:
        made.append(HatchetExample(hatchet_engine, name, tmp_path))
        return made[-1]

    yield make
    for example in made:
        for worker in example.workers:
            worker.stop()


async def test_basic_task_on_hatchet(hatchet_example: Callable[[str], HatchetExample]) -> None:
    example = hatchet_example("basic_task")
    example.start_worker()
    outcome = await example.module.main(delay_seconds=2, timeout=60)

    now, later, cancelled = outcome["now"], outcome["later"], outcome["cancelled"]
    assert now.state is TaskState.SUCCEEDED, example.logs()
    assert now.result == {"ticker": "AAPL", "summary": "nothing unusual in today's AAPL headlines"}
    assert later.state is TaskState.SUCCEEDED, example.logs()
    assert later.result["ticker"] == "NVDA"
    assert later.started_at is not None and later.scheduled_at is not None
    assert later.started_at >= later.scheduled_at - timedelta(seconds=0.5)  # engine and local clocks
    assert cancelled.state is TaskState.CANCELLED
    assert cancelled.attempts == 0


async def test_cron_task_on_hatchet(hatchet_example: Callable[[str], HatchetExample]) -> None:
    example = hatchet_example("cron_task")
    example.start_worker()
    runs = await example.module.main(fires=2, expression="*/2 * * * * *", timeout=60)

    assert [r.state for r in runs] == [TaskState.SUCCEEDED] * 2, example.logs()
    assert [r.result for r in runs] == [{"book": "demo", "within_limits": True}] * 2
    assert runs[0].scheduled_at is not None and runs[1].scheduled_at is not None
    assert runs[1].scheduled_at > runs[0].scheduled_at
    async with example.module.scheduler:
        left = await example.module.scheduler.list_crons()
    assert [(c.task_name, c.expression) for c in left] == [("check_positions", "* 9-16 * * 1-5")]


async def test_self_scheduling_agent_on_hatchet(hatchet_example: Callable[[str], HatchetExample]) -> None:
    example = hatchet_example("self_scheduling_agent")
    example.start_worker()
    runs = await example.module.main(max_runs=3, delay_seconds=1, timeout=60)

    assert [r.state for r in runs] == [TaskState.SUCCEEDED] * 3, example.logs()
    assert [r.payload["run"] for r in runs] == [1, 2, 3]
    assert [r.payload["focus"] for r in runs] == [
        "scan the watchlist",
        "re-check NVDA after the open",
        "write the end-of-day summary",
    ]
    for run, following in itertools.pairwise(runs):
        # the id schedule_task returned inside the worker is the next run's id here
        assert run.result["next"]["task_id"] == following.id
        assert run.result["next"]["focus"] == following.payload["focus"]
    assert runs[-1].result["next"] is None


async def test_durable_timer_survives_a_killed_worker(
    hatchet_example: Callable[[str], HatchetExample],
) -> None:
    example = hatchet_example("durable_timer")
    first = example.start_worker()
    started = time.monotonic()
    heartbeat = asyncio.create_task(example.module.main(agent_id="a9", sleep_seconds=8, timeout=90))

    # a second client watches for the run to start sleeping, then kills its worker
    watcher = create_scheduler()
    watcher.add_tasks(example.module.scheduler.tasks.values())
    async with watcher:

        async def running() -> list[TaskInfo]:
            assert not heartbeat.done(), heartbeat
            return await watcher.list_tasks("heartbeat", states=[TaskState.RUNNING])

        try:
            await poll_until(running, timeout=60, what="a RUNNING heartbeat run in list_tasks")
        except PollTimeoutError as exc:
            raise AssertionError(f"heartbeat never started: {exc}\n{example.logs()}") from exc
    await asyncio.sleep(2)  # inside the 8 s durable sleep
    first.kill()
    example.start_worker()

    info = await heartbeat
    elapsed = time.monotonic() - started
    assert info.state is TaskState.SUCCEEDED, f"{info}\n{example.logs()}"
    assert info.result == {"agent_id": "a9", "slept_seconds": 8.0, "healthy": True}
    assert elapsed >= 8
    assert elapsed < 90, f"woke {elapsed:.0f}s after an 8 s sleep"
