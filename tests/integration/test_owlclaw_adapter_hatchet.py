"""OwlClaw's own scenarios through ``owlclaw.integrations.hatchet_client`` on the real Hatchet engine.

The worker is what OwlClaw runs: this file, started as a script, builds a
``HatchetClient`` from an owlclaw.yaml ``hatchet:`` section, connects, declares
the tasks and calls ``start_worker()``. Handlers report only through results,
so the test process sees what the worker process saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import WorkerProcess

from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig
from owlclaw.scheduler.polling import poll_until

pytestmark = pytest.mark.integration

_ENV_TO_DROP = ("HATCHET_", "OWLCLAW_")


def declare_agent_tasks(client: HatchetClient) -> dict[str, Any]:
    """The tasks OwlClaw's scenarios use, declared after ``connect()`` as OwlClaw does."""

    @client.task(name="agent_scheduled_run", retries=0)
    async def agent_scheduled_run(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return input

    @client.task(name="cron_daily", cron="0 9 * * *", retries=3, priority=1)
    async def cron_daily(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"daily": input, "run": ctx.workflow_run_id}

    @client.task(name="cron_tick", retries=0)
    def cron_tick(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return input

    @client.task(name="mcp_fail", retries=0)
    async def mcp_fail(input: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError(f"tool failed for {input.get('tool')}")

    @client.task(name="mcp_slow", retries=0)
    async def mcp_slow(input: dict[str, Any], ctx: Any) -> str:
        await asyncio.sleep(float(input["seconds"]))
        return "finished"

    @client.durable_task(name="agent_heartbeat", retries=0)
    async def agent_heartbeat(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        await ctx.aio_sleep_for(timedelta(seconds=float(input["seconds"])))
        return {"woke": True, "run": ctx.workflow_run_id}

    return {"cron_daily": cron_daily}


def declare_versioned(client: HatchetClient, version: int) -> None:
    """A task OwlClaw's ``app.start()`` declares again after ``app.stop()``: a new
    function each time (it returns its ``version``), with a cron that moved."""

    @client.task(name="redeclared", cron=f"0 {8 + version} * * *", retries=0)
    async def redeclared(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"version": version, "input": input}


def _worker_main(config_path: str) -> None:
    client = HatchetClient(HatchetConfig.from_yaml(config_path))
    client.connect()
    declare_agent_tasks(client)
    declare_versioned(client, 1)
    # OwlClaw's app.stop() then app.start() with the same client: every task again
    declare_agent_tasks(client)
    declare_versioned(client, 2)
    client.start_worker()


# --------------------------------------------------------------------------
# fixtures


class Worker(WorkerProcess):
    """This file's ``_worker_main``: OwlClaw's own worker, through ``HatchetClient``."""

    def __init__(self, engine: Any, directory: Path) -> None:
        self.engine = engine
        self.name = f"owl{uuid.uuid4().hex[:8]}"
        config = directory / f"{self.name}.yaml"
        config.write_text(yaml.safe_dump({"hatchet": _section(engine, worker_name=self.name)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_TO_DROP)}
        env.update(HATCHET_API_TOKEN=engine.token, PYTHONUNBUFFERED="1")
        super().__init__([sys.executable, __file__, str(config)], env, directory / f"{self.name}.log")

    def start(self) -> Worker:
        """Start it; return once the engine lists it ACTIVE."""
        super().start().wait_active(self.engine, self.name)
        return self


def _section(engine: Any, **overrides: Any) -> dict[str, Any]:
    """The ``hatchet:`` section OwlClaw would write for this engine (token from the environment)."""
    section = {
        "mode": "lite" if engine.tls_strategy == "none" else "production",
        "server_url": engine.server_url,
        "grpc_host_port": engine.host_port,
        "grpc_tls_strategy": engine.tls_strategy,
        "namespace": engine.namespace,
        "api_token": "${HATCHET_API_TOKEN}",
        "connect_timeout_seconds": 10,
    }
    section.update(overrides)
    return section


def _config(engine: Any, **overrides: Any) -> HatchetConfig:
    return HatchetConfig.from_mapping({**_section(engine), "api_token": engine.token, **overrides})


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Iterator[Any]:
    yield dataclasses.replace(hatchet_engine, namespace=f"owl-adapter-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="module")
def worker(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(engine, tmp_path_factory.mktemp("owlclaw-workers"))
    try:
        yield w.start()
    finally:
        w.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_ENV_TO_DROP):
            monkeypatch.delenv(name)


@pytest.fixture
def client(engine: Any, worker: Worker) -> Iterator[HatchetClient]:
    c = HatchetClient(_config(engine))
    c.connect()
    declare_agent_tasks(c)
    yield c
    c.disconnect()


async def _wait(
    client: HatchetClient, task_id: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    status: dict[str, Any] = await poll_until(
        lambda: client.get_task_status(task_id),
        lambda status: status["status"] in statuses,
        timeout=timeout,
        what=f"task {task_id} to have a status in {sorted(statuses)}",
    )
    return status


# --------------------------------------------------------------------------
# OwlClaw's scenarios


async def test_1_an_agent_run_schedules_its_next_run(client: HatchetClient) -> None:
    payload = {
        "agent_id": "bot-1",
        "trigger": "schedule_once",
        "focus": "inventory",
        "scheduled_by_run_id": "run-0",
        "tenant_id": "default",
    }
    later = await client.schedule_task("agent_scheduled_run", 300, **payload)
    soon = await client.schedule_task("agent_scheduled_run", delay_seconds=2, **payload)
    assert later != soon
    done = await _wait(client, soon, {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["result"] == payload  # the handler received exactly that input
    pending = await client.get_task_status(later)
    assert pending["status"] == "scheduled"
    assert await client.cancel_task(later) is True


async def test_2_cancel_by_id_tries_task_then_cron(client: HatchetClient) -> None:
    task_id = await client.schedule_task("agent_scheduled_run", 600, agent_id="bot-2")
    cron_id = await client.schedule_cron("agent_scheduled_run", "agent_cron_bot_2", "0 9 * * 1-5", {"a": 1})
    assert task_id != cron_id
    assert await client.cancel_cron(task_id) is False
    assert await client.cancel_task(task_id) is True
    assert (await client.get_task_status(task_id))["status"] == "cancelled"
    assert await client.cancel_task(cron_id) is False
    assert await client.cancel_cron(cron_id) is True
    unknown = str(uuid.uuid4())
    assert await client.cancel_task(unknown) is False
    assert await client.cancel_cron(unknown) is False
    assert await client.cancel_cron("cron-" + unknown) is False


async def test_3_schedule_cron_registers_fires_and_cancel_cron_stops_it(client: HatchetClient) -> None:
    weekday = await client.schedule_cron(
        workflow_name="agent_scheduled_run",
        cron_name="agent_cron_bot_3",
        expression="0 9 * * 1-5",
        input_data={"agent_id": "bot-3", "trigger": "cron"},
        additional_metadata={"agent_id": "bot-3"},
    )
    crons = await client.scheduler.list_crons("agent_scheduled_run")
    [registered] = [c for c in crons if "cron-" + c.id == weekday]
    assert registered.expression == "0 9 * * 1-5"
    assert registered.payload == {"agent_id": "bot-3", "trigger": "cron"}
    assert await client.cancel_cron(weekday) is True
    assert all("cron-" + c.id != weekday for c in await client.scheduler.list_crons("agent_scheduled_run"))

    # a seconds-level cron shows it firing with its input; six fields read as
    # croniter (OwlClaw's validator) reads them, seconds last: every 2 s
    tick = await client.schedule_cron("cron_tick", "agent_cron_tick", "* * * * * */2", {"tick": "bot-3"})
    try:
        runs = await poll_until(
            lambda: client.scheduler.list_tasks("cron_tick"),
            timeout=30,
            interval=0.5,
            what="a run of the */2 s cron_tick cron in list_tasks",
        )
        done = await _wait(client, runs[-1].id, {"completed", "failed"})
        assert done["result"] == {"tick": "bot-3"}
    finally:
        assert await client.cancel_cron(tick) is True
    await asyncio.sleep(2.5)  # a tick already due may still start
    count = len(await client.scheduler.list_tasks("cron_tick"))
    await asyncio.sleep(4.5)
    assert len(await client.scheduler.list_tasks("cron_tick")) == count


async def test_4_static_cron_is_registered_and_can_be_triggered_by_hand(engine: Any, worker: Worker) -> None:
    client = HatchetClient(_config(engine))
    client.connect()
    declared = declare_agent_tasks(client)
    assert declared["cron_daily"].__name__ == "cron_daily"  # the original function, not a wrapper
    run_id = await client.run_task_now("cron_daily", tenant_id="default", focus="daily report")
    crons = await client.scheduler.list_crons("cron_daily")
    assert [c.expression for c in crons] == ["0 9 * * *"]
    done = await _wait(client, run_id, {"completed", "failed"})
    assert done["result"] == {"daily": {"tenant_id": "default", "focus": "daily report"}, "run": run_id}
    # pause removes it from the engine, resume puts it back
    assert client.pause_task("cron_daily") is True
    assert await client.scheduler.list_crons("cron_daily") == []
    assert client.resume_task("cron_daily") is True
    assert [c.expression for c in await client.scheduler.list_crons("cron_daily")] == ["0 9 * * *"]
    client.disconnect()


async def test_5_mcp_task_lifecycle(client: HatchetClient) -> None:
    ok = await client.run_task_now("agent_scheduled_run", tool="lookup", args={"q": 1})
    done = await _wait(client, ok, {"completed", "failed"})
    assert done["id"] == ok
    assert done["status"] == "completed"
    assert done["result"] == {"tool": "lookup", "args": {"q": 1}}
    assert done["error"] is None

    failed = await _wait(client, await client.run_task_now("mcp_fail", tool="x"), {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "tool failed for x" in failed["error"]

    slow = await client.run_task_now("mcp_slow", seconds=30)
    await _wait(client, slow, {"running"})
    assert await client.cancel_task(slow) is True
    assert (await _wait(client, slow, {"cancelled", "completed", "failed"}))["status"] == "cancelled"
    assert await client.cancel_task(slow) is False


async def test_6_heartbeat_lists_one_agents_pending_schedules(client: HatchetClient) -> None:
    agent = f"bot-{uuid.uuid4().hex[:6]}"
    before = datetime.now(UTC)
    first = await client.schedule_task("agent_scheduled_run", 300, agent_id=agent)
    second = await client.schedule_task("agent_scheduled_run", 900, agent_id=agent)
    other = await client.schedule_task("agent_scheduled_run", 300, agent_id="someone-else")
    try:
        listed = await client.list_scheduled_tasks(agent_id=agent)
        assert [t["id"] for t in listed] == [first, second]
        assert all(t["workflow"] == "agent_scheduled_run" for t in listed)
        due = [t["scheduled_at"] for t in listed]
        assert abs((due[0] - before).total_seconds() - 300) < 30
        assert abs((due[1] - before).total_seconds() - 900) < 30
    finally:
        for task_id in (first, second, other):
            await client.cancel_task(task_id)
    assert await client.list_scheduled_tasks(agent_id=agent) == []


async def test_7_durable_sleep_survives_a_killed_worker(hatchet_engine: Any, tmp_path: Path) -> None:
    """The worker is SIGKILLed mid-sleep and another one started; the engine
    notices the dead worker after its heartbeat timeout, so the run wakes late."""
    engine = dataclasses.replace(hatchet_engine, namespace=f"owl-durable-{uuid.uuid4().hex[:10]}")
    first = await asyncio.to_thread(Worker(engine, tmp_path).start)
    second = Worker(engine, tmp_path)
    client = HatchetClient(_config(engine))
    client.connect()
    declare_agent_tasks(client)
    try:
        run_id = await client.run_task_now("agent_heartbeat", seconds=8)
        await _wait(client, run_id, {"running"}, timeout=30)
        started = time.monotonic()
        await asyncio.sleep(2)  # inside the durable sleep
        first.kill()
        await asyncio.to_thread(second.start)
        done = await _wait(client, run_id, {"completed", "failed", "cancelled"}, timeout=120)
        assert done["status"] == "completed", (done, second.log_tail())
        assert done["result"] == {"woke": True, "run": run_id}
        woke_after = time.monotonic() - started
        print(f"durable 8s sleep across a SIGKILLed worker finished {woke_after:.1f}s after it started")
        assert 7.5 <= woke_after < 90
    finally:
        client.disconnect()
        first.stop()
        second.stop()


async def test_8_config_from_owlclaw_yaml_and_the_connect_errors(
    engine: Any, worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(yaml.safe_dump({"app": {"name": "owl"}, "hatchet": _section(engine)}))
    monkeypatch.setenv("HATCHET_API_TOKEN", engine.token)
    config = HatchetConfig.from_yaml(path)
    assert engine.token not in repr(config)
    client = HatchetClient(config)
    client.connect()
    declare_agent_tasks(client)
    run_id = await client.run_task_now("agent_scheduled_run", hello="yaml")
    assert (await _wait(client, run_id, {"completed"}))["result"] == {"hello": "yaml"}
    client.disconnect()

    monkeypatch.delenv("HATCHET_API_TOKEN")
    with pytest.raises(ValueError, match="HATCHET_API_TOKEN"):
        HatchetClient(HatchetConfig.from_yaml(path)).connect()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = _config(
        engine,
        server_url=f"http://127.0.0.1:{port}",
        grpc_host_port=f"127.0.0.1:{port}",
        connect_timeout_seconds=3,
    )
    with pytest.raises(ConnectionError) as info:
        HatchetClient(unreachable).connect()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert engine.token not in str(info.value)

    header, body, signature = engine.token.split(".")
    forged = f"{header}.{body}.{signature[:-6]}{'A' * 6 if not signature.endswith('A' * 6) else 'B' * 6}"
    with pytest.raises(ConnectionError, match="token") as info:
        HatchetClient(_config(engine, api_token=forged)).connect()
    assert forged not in str(info.value) and engine.token not in str(info.value)


# --------------------------------------------------------------------------
# the cases: re-declaration and plain text to a loopback engine


async def test_redeclaring_tasks_replaces_them_and_moves_their_cron(engine: Any, worker: Worker) -> None:
    client = HatchetClient(_config(engine))
    client.connect()
    declare_agent_tasks(client)
    declare_versioned(client, 1)
    try:
        first = await client.run_task_now("redeclared", n=1)
        assert [c.expression for c in await client.scheduler.list_crons("redeclared")] == ["0 9 * * *"]
        declare_agent_tasks(client)  # app.stop(); app.start(): the same names again
        declare_versioned(client, 2)
        second = await client.run_task_now("redeclared", n=2)
        assert [c.expression for c in await client.scheduler.list_crons("redeclared")] == ["0 10 * * *"]
        # the worker declared each task twice as well: its latest function ran both
        for run_id, n in ((first, 1), (second, 2)):
            done = await _wait(client, run_id, {"completed", "failed"})
            assert done["result"] == {"version": 2, "input": {"n": n}}, done
    finally:
        client.disconnect()


async def test_redeclaring_without_cron_removes_the_declared_cron(engine: Any, worker: Worker) -> None:
    client = HatchetClient(_config(engine))
    client.connect()
    name = f"dropped_{uuid.uuid4().hex[:8]}"

    @client.task(name=name, cron="0 7 * * *", retries=0)
    async def with_cron(input: dict[str, Any], ctx: Any) -> None:
        return None

    try:
        await client.list_scheduled_tasks()  # connects this loop's scheduler
        assert [c.expression for c in await client.scheduler.list_crons(name)] == ["0 7 * * *"]

        @client.task(name=name, retries=0)
        async def without_cron(input: dict[str, Any], ctx: Any) -> None:
            return None

        await client.list_scheduled_tasks()
        assert await client.scheduler.list_crons(name) == []
    finally:
        client.disconnect()


async def test_plain_text_to_the_loopback_engine_without_mode(
    engine: Any, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OwlClaw's console health check: ``HatchetConfig(server_url=..., api_token=...)``,
    no mode (so production), plain text from ``HATCHET_GRPC_TLS_STRATEGY``."""
    if engine.tls_strategy != "none" or not engine.host_port.startswith(("127.", "localhost", "[::1]")):
        pytest.skip("needs a plain-text engine on a loopback address")
    monkeypatch.setenv("HATCHET_GRPC_TLS_STRATEGY", "none")
    monkeypatch.setenv("HATCHET_GRPC_HOST_PORT", engine.host_port)
    config = HatchetConfig(server_url=engine.server_url, api_token=engine.token, namespace=engine.namespace)
    assert config.mode == "production"
    client = HatchetClient(config)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.to_thread(client.connect), timeout=30)
    print(f"health-check connect took {time.monotonic() - started:.2f}s")  # OwlClaw allows 3 s
    await asyncio.to_thread(client.disconnect)

    # and the calls work through it
    client = HatchetClient(config)
    client.connect()
    declare_agent_tasks(client)
    try:
        run_id = await client.run_task_now("agent_scheduled_run", plain=True)
        done = await _wait(client, run_id, {"completed"})
        assert done["result"] == {"plain": True}
    finally:
        client.disconnect()


if __name__ == "__main__":
    _worker_main(sys.argv[1])
