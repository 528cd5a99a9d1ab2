"""Hatchet-specific behaviour the conformance suite cannot cover: worker
restarts, SIGTERM drain, connection failures, seconds-level crons.

These tests use their own namespace and their own workers, so killing a
worker never disturbs the conformance worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import (
    InvalidCronError,
    NotSupportedError,
    SchedulerConnectionError,
    TaskNotFoundError,
)
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.registry import create_scheduler

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Iterator[Any]:
    """The session's engine, in a namespace of this module's own."""
    yield dataclasses.replace(hatchet_engine, namespace=f"owlclaw-test-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def worker(engine: Any, spawn_worker: Any) -> Any:
    return spawn_worker(engine)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_end_to_end_through_create_scheduler(
    engine: Any, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", engine.token)
    config = SchedulerConfig.from_mapping({"backend": "hatchet", "hatchet": engine.settings()})
    scheduler = create_scheduler(config)
    assert isinstance(scheduler, HatchetScheduler)
    from owlclaw.scheduler.testing import register_conformance_tasks

    register_conformance_tasks(scheduler)
    async with scheduler:
        task_id = await scheduler.run_task("conf_echo", {"value": {"hello": "hatchet"}})
        info = await scheduler.wait_for_task(task_id, timeout=60)
        assert info.state is TaskState.SUCCEEDED
        assert info.result == {"hello": "hatchet"}
        listed = await scheduler.list_tasks("conf_echo", limit=10)
        assert task_id in [t.id for t in listed]
        with pytest.raises(NotSupportedError, match="owlclaw-scheduler worker"):
            await scheduler.start_worker()


async def test_durable_sleep_survives_a_killed_worker(
    engine: Any, worker: Any, spawn_worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        task_id = await scheduler.run_task("conf_durable", {"seconds": 8})
        await poll_until(
            lambda: scheduler.get_task_status(task_id),
            lambda info: info.state is TaskState.RUNNING,
            timeout=30,
            interval=0.1,
            what=f"conf_durable run {task_id} to be running",
        )
        started = datetime.now(UTC)
        await asyncio.sleep(2)  # inside the durable sleep
        worker.signal(signal.SIGKILL)
        worker.wait(timeout=10)
        spawn_worker(engine)
        info = await scheduler.wait_for_task(task_id, timeout=120)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"woke": True, "task_id": task_id}
        woke_after = (datetime.now(UTC) - started).total_seconds()
        print(f"durable 8s sleep across a SIGKILLed worker finished {woke_after:.1f}s after start")
        assert woke_after >= 7.5
        assert woke_after < 60, f"woke {woke_after:.1f}s after starting an 8s sleep"


async def test_sigterm_drains_the_run_in_flight(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine) as scheduler:
        task_id = await scheduler.run_task("conf_slow", {"seconds": 4})
        await poll_until(
            lambda: scheduler.get_task_status(task_id),
            lambda info: info.state is TaskState.RUNNING,
            timeout=30,
            interval=0.1,
            what=f"conf_slow run {task_id} to be running",
        )
        worker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
        assert code == 0, worker.log_tail()
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.SUCCEEDED, (info, worker.log_tail())
        assert info.result == "finished"


async def test_seconds_level_cron_fires(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine) as scheduler:
        cron_id = await scheduler.add_cron("conf_cron_target", "*/2 * * * * *", {"tick": True})
        try:
            # the engine's ticker polls crons every 5 s: the first run can take that long to appear
            runs = await poll_until(
                lambda: scheduler.list_tasks("conf_cron_target", limit=100),
                timeout=60,
                interval=0.5,
                what="a run of the */2 s cron conf_cron_target in list_tasks",
            )
            done = await scheduler.wait_for_task(runs[-1].id, timeout=60)
            assert done.state is TaskState.SUCCEEDED
            assert done.result == {"tick": True}
        finally:
            await scheduler.remove_cron(cron_id)


async def test_declared_cron_is_registered_once(engine: Any, connect_scheduler: Any) -> None:
    for _ in range(2):
        async with connect_scheduler(engine) as scheduler:
            crons = await scheduler.list_crons("conf_declared_cron")
            assert len(crons) == 1


async def test_task_schedules_itself(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine) as scheduler:
        parent = await scheduler.wait_for_task(
            await scheduler.run_task("conf_self_schedule", {"delay": 2, "value": "child"}), timeout=60
        )
        assert parent.state is TaskState.SUCCEEDED, parent.error
        child = await scheduler.wait_for_task(parent.result, timeout=60)
        assert child.state is TaskState.SUCCEEDED
        assert child.result == "child"
        assert child.id == parent.result


async def test_cancel_before_and_after_firing(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine) as scheduler:
        before = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=60)
        assert await scheduler.cancel_task(before) is True
        assert (await scheduler.get_task_status(before)).state is TaskState.CANCELLED
        async with connect_scheduler(engine) as other_process:  # no in-process record there
            info = await other_process.get_task_status(before)
            assert info.state is TaskState.CANCELLED
            assert info.task_name == "conf_echo"
            assert info.payload == {"value": 1}
            assert info.attempts == 0 and info.result is None
            assert await other_process.cancel_task(before) is False
            assert before not in [t.id for t in await other_process.list_tasks(limit=1000)]
            assert before not in [t.id for t in await other_process.list_scheduled_tasks()]

        after = await scheduler.schedule_task("conf_slow", {"seconds": 30}, delay_seconds=1)
        await poll_until(
            lambda: scheduler.get_task_status(after),
            lambda info: info.state is TaskState.RUNNING,
            timeout=30,
            interval=0.1,
            what=f"scheduled conf_slow run {after} to be running",
        )
        assert await scheduler.cancel_task(after) is True
        info = await scheduler.wait_for_task(after, timeout=60)
        assert info.state is TaskState.CANCELLED
        assert info.id == after
        assert await scheduler.cancel_task(after) is False


async def test_other_namespaces_runs_are_invisible(
    engine: Any, hatchet_engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        task_id = await scheduler.run_task("conf_echo", {"value": 1})
        await scheduler.wait_for_task(task_id, timeout=60)
    async with connect_scheduler(hatchet_engine) as other:
        with pytest.raises(TaskNotFoundError):
            await other.get_task_status(task_id)
        assert task_id not in [t.id for t in await other.list_tasks(limit=1000)]


async def test_failed_between_retries_is_reported_queued(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    """The engine shows a run FAILED for a moment before each retry."""
    async with connect_scheduler(engine) as scheduler:
        task_id = await scheduler.run_task("conf_flaky", {"fail_times": 9})
        seen: list[tuple[TaskState, int]] = []

        async def read() -> TaskInfo:
            info = await scheduler.get_task_status(task_id)
            if not info.state.is_final:
                seen.append((info.state, info.attempts))
            return info

        info = await poll_until(
            read,
            lambda info: info.state.is_final,
            timeout=60,
            interval=0.02,
            what=f"conf_flaky run {task_id} to reach a final state",
        )
        assert info.state is TaskState.FAILED
        assert info.attempts == 3, seen
        assert info.error and "planned failure on attempt 3" in info.error


async def test_invalid_cron_is_rejected_before_reaching_the_engine(
    engine: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        for expression in ("61 * * * *", "* * * * * * *", "@fortnightly"):
            with pytest.raises(InvalidCronError):
                await scheduler.add_cron("conf_cron_target", expression)
        with pytest.raises(TaskNotFoundError):
            await scheduler.remove_cron("not-a-cron-id")


async def test_unreachable_engine_names_the_host_not_the_token(engine: Any) -> None:
    port = _free_port()
    scheduler = HatchetScheduler(
        engine.config(
            host_port=f"127.0.0.1:{port}",
            server_url=f"http://127.0.0.1:{port}",
            connect_timeout_seconds=3,
        )
    )
    with pytest.raises(SchedulerConnectionError) as info:
        await scheduler.connect()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert engine.token not in message
    assert engine.token not in repr(info.value.__cause__)


async def test_bad_token_names_the_host_not_the_token(engine: Any) -> None:
    good = engine.config()
    assert good.api_token is not None
    real = good.api_token.get_secret_value()
    header, payload, signature = real.split(".")
    forged = ".".join(
        [header, payload, signature[:-6] + ("A" * 6 if not signature.endswith("A" * 6) else "B" * 6)]
    )
    scheduler = HatchetScheduler(engine.config(api_token=forged, connect_timeout_seconds=10))
    with pytest.raises(SchedulerConnectionError) as info:
        await scheduler.connect()
    message = str(info.value)
    assert engine.host_port in message
    assert "token" in message
    assert forged not in message and real not in message


async def test_embedded_mode_starts_and_stops_its_own_engine(local_engine_binaries: None) -> None:
    from owlclaw.backends.hatchet.config import HatchetConfig
    from owlclaw.backends.hatchet.local.postgres import LocalPostgres
    from owlclaw.scheduler.testing import register_conformance_tasks

    with LocalPostgres() as pg:
        config = HatchetConfig(mode="embedded", database_url=pg.database_url("embedded"), namespace="emb")
        scheduler = register_conformance_tasks(HatchetScheduler(config))
        async with scheduler:
            engine = scheduler._connection.engine
            assert engine is not None and engine.running
            task_id = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=3600)
            listed = await scheduler.list_scheduled_tasks("conf_echo")
            assert [t.id for t in listed] == [task_id]
            assert await scheduler.cancel_task(task_id) is True
        assert not engine.running


async def test_wrong_server_url_names_it(engine: Any) -> None:
    port = _free_port()
    scheduler = HatchetScheduler(
        engine.config(server_url=f"http://127.0.0.1:{port}", connect_timeout_seconds=5)
    )
    with pytest.raises(SchedulerConnectionError) as info:
        await scheduler.connect()
    assert engine.token not in str(info.value)
    assert f"http://127.0.0.1:{port}" in str(info.value)


class _ShippingOwnLogs:
    """The engine's settings with ``ship_owlclaw_logs: true`` for the workers started with it."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return self._engine.settings(ship_owlclaw_logs=True, **overrides)


async def _engine_log_lines(scheduler: HatchetScheduler, run_id: str) -> list[str]:
    client = scheduler._connection.require()
    details = await client.runs.aio_get(run_id)
    lines: list[str] = []
    for task in details.tasks:
        rows = (await client.logs.aio_list(str(task.metadata.id))).rows or []
        lines += [row.message for row in rows]
    return lines


async def test_owlclaw_run_lines_stay_local_unless_asked(
    engine: Any, spawn_worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        local = spawn_worker(engine)
        quiet = await scheduler.run_task("conf_echo", {"value": 1})
        assert (await scheduler.wait_for_task(quiet, timeout=120)).state is TaskState.SUCCEEDED
        local.stop()
        spawn_worker(_ShippingOwnLogs(engine))
        loud = await scheduler.run_task("conf_echo", {"value": 2})
        assert (await scheduler.wait_for_task(loud, timeout=120)).state is TaskState.SUCCEEDED
        # the control: with ship_owlclaw_logs the engine gets the run's "run started" line
        shipped = await poll_until(
            lambda: _engine_log_lines(scheduler, loud),
            lambda lines: any("run started" in line for line in lines),
            timeout=60,
            interval=0.5,
            what="the shipping worker's 'run started' line in the engine's logs",
        )
        assert shipped
        # by then the first worker's lines, had it sent any, would be there long since
        assert not [line for line in await _engine_log_lines(scheduler, quiet) if "owlclaw" in line]


async def test_a_run_cancelled_while_running_is_marked_by_its_worker(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    from owlclaw.backends.hatchet.wire import CANCEL_MARK

    async with connect_scheduler(engine) as scheduler:
        task_id = await scheduler.run_task("conf_slow", {"seconds": 60})
        await poll_until(
            lambda: scheduler.get_task_status(task_id),
            lambda info: info.state is TaskState.RUNNING,
            timeout=60,
            what="conf_slow to start",
        )
        assert await scheduler.cancel_task(task_id) is True
        assert (await scheduler.get_task_status(task_id)).state is TaskState.CANCELLED
        # the worker's line that lets cancel_task answer without waiting 2 s
        lines = await poll_until(
            lambda: _engine_log_lines(scheduler, task_id),
            lambda lines: CANCEL_MARK in lines,
            timeout=60,
            what="the worker's cancel mark in the run's log",
        )
        assert lines.count(CANCEL_MARK) == 1
