"""OwlClaw-shaped code on the drop-in ``owlclaw.integrations.hatchet_client``, memory backend.

The callers (``owlclaw_shapes``) make the calls OwlClaw's own modules make, and
``tests/unit/test_hatchet.py``'s expectations are checked here: the same
arguments, the same fields read from what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter
from owlclaw_shapes import (
    MONDAY_0800,
    TOKEN,
    BuiltInToolsShape,
    CronRegistryShape,
    RuntimeBridgeShape,
    TaskToolsShape,
    overview_hatchet_health,
)

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig
from owlclaw.integrations.hatchet_client._bridge import hatchet_settings
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import ConfigError, InvalidCronError, TaskDefinitionError
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.registry import create_scheduler


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HATCHET_", "OWLCLAW_")):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------
# a virtual-clock client


class App:
    def __init__(self) -> None:
        self.memory = MemoryScheduler(clock=VirtualClock(start=MONDAY_0800))
        self.client = HatchetClient(HatchetConfig(backend="memory"), scheduler=self.memory)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    a = App()
    a.client.connect()
    yield a
    a.client.disconnect()
    await asyncio.sleep(0)


# --------------------------------------------------------------------------
# item 2: declaring a task again, the latest declaration wins


async def test_registry_start_twice_redeclares_and_the_latest_handler_runs(app: App) -> None:
    first = CronRegistryShape({"daily": ("0 9 * * *", 0)})
    first.start(app.client)
    # app.stop() then app.start(): a new registry run, new functions, same names
    second = CronRegistryShape({"daily": ("0 9 * * *", 0)})
    second.start(app.client)
    run_id = await second.trigger_now("daily", focus="report")
    await app.memory.run_until_idle(max_seconds=0)
    status = await app.client.get_task_status(run_id)
    assert status["status"] == "completed"
    assert second.fired == [("daily", {"tenant_id": "default", "focus": "report"})]
    assert first.fired == []
    await app.memory.advance(3600)  # 09:00: one cron, not two
    assert [e for e, _ in second.fired] == ["daily", "daily"]
    assert first.fired == []
    assert [c.expression for c in await app.memory.list_crons("cron_daily")] == ["0 9 * * *"]


async def test_redeclaring_with_a_changed_cron_moves_the_cron(app: App) -> None:
    CronRegistryShape({"daily": ("0 9 * * *", 0)}).start(app.client)
    await app.client.list_scheduled_tasks()  # the scheduler runs in this loop now
    changed = CronRegistryShape({"daily": ("30 10 * * *", 2)})
    changed.start(app.client)
    assert [c.expression for c in await app.memory.list_crons("cron_daily")] == ["30 10 * * *"]
    assert app.memory.tasks["cron_daily"].priority == 2
    await app.memory.advance(24 * 3600)
    assert [e for e, _ in changed.fired] == ["daily"]


async def test_redeclaring_before_connect_and_while_paused(app: App) -> None:
    client = HatchetClient(HatchetConfig(backend="memory"), scheduler=MemoryScheduler(clock=VirtualClock()))
    CronRegistryShape({"a": ("0 9 * * *", 0)}).start(client)
    CronRegistryShape({"a": ("0 10 * * *", 0)}).start(client)  # before connect(): nothing registered yet
    client.connect()
    assert [c.expression for c in await client.scheduler.list_crons("cron_a")] == ["0 10 * * *"]
    registry = CronRegistryShape({"a": ("0 10 * * *", 0)})
    registry.start(client)
    registry.pause_trigger("a")
    CronRegistryShape({"a": ("0 11 * * *", 0)}).start(client)  # while paused
    # memory keeps schedules: the cron is paused for real, and stays paused re-declared
    assert [(c.expression, c.paused) for c in await client.scheduler.list_crons("cron_a")] == [
        ("0 11 * * *", True)
    ]
    registry.resume_trigger("a")
    assert [(c.expression, c.paused) for c in await client.scheduler.list_crons("cron_a")] == [
        ("0 11 * * *", False)
    ]
    client.disconnect()


def test_run_once_style_asyncio_run_per_call_with_the_same_client() -> None:
    """``app.run_once()`` is ``asyncio.run(start(...) ...)`` with the same client each time."""
    client = HatchetClient(HatchetConfig(backend="memory"))
    client.connect()

    async def run_once(n: int) -> dict[str, Any]:
        bridge = RuntimeBridgeShape(client)
        bridge.register_task()  # re-declared on every call
        run_id = await bridge.run_now(n=n)
        await poll_until(
            lambda: client.get_task_status(run_id), lambda s: s["status"] == "completed", timeout=10
        )
        return await client.get_task_status(run_id)

    assert asyncio.run(run_once(1))["result"] == {"run": "ok", "payload": {"n": 1}}
    assert asyncio.run(run_once(2))["result"] == {"run": "ok", "payload": {"n": 2}}
    client.disconnect()


# --------------------------------------------------------------------------
# item 3: plain text to a loopback engine, with no mode given


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_text_to_loopback_without_mode_is_allowed(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("HATCHET_GRPC_TLS_STRATEGY", "none")
    config = HatchetConfig(server_url=f"http://{host}:8080", api_token=TOKEN)  # as overview.py builds it
    assert config.mode == "production" and config.grpc_tls_strategy == "none"
    settings = hatchet_settings(config)
    assert settings["tls_strategy"] == "none"
    assert create_scheduler(SchedulerConfig.from_mapping({"backend": "hatchet", "hatchet": settings}))


def test_plain_text_to_a_remote_host_in_production_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCHET_GRPC_TLS_STRATEGY", "none")
    client = HatchetClient(HatchetConfig(server_url="http://hatchet.example.com", api_token=TOKEN))
    with pytest.raises(ConfigError, match="plain-text") as info:
        client.connect()
    assert "grpc_tls_strategy" in str(info.value)
    assert TOKEN not in str(info.value)


async def test_overview_health_check_on_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await overview_hatchet_health() == (False, "HATCHET_API_TOKEN not set")
    monkeypatch.setenv("HATCHET_API_TOKEN", TOKEN)
    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "memory")
    assert await overview_hatchet_health() == (True, "ok")


# --------------------------------------------------------------------------
# item 5: defaults and failure values as OwlClaw's tests/unit/test_hatchet.py reads them


def test_config_defaults_are_the_original_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    config = HatchetConfig()
    assert config.server_url == "http://localhost:7077"
    assert config.grpc_tls_strategy == "tls"
    assert config.effective_grpc_host_port == "localhost:7077"
    assert (config.namespace, config.mode, config.max_concurrent_tasks) == ("owlclaw", "production", 10)
    assert (config.postgres_db, config.postgres_user) == ("hatchet", "hatchet")
    monkeypatch.setenv("HATCHET_GRPC_TLS_STRATEGY", "none")
    assert HatchetConfig().grpc_tls_strategy == "none"
    assert HatchetConfig(grpc_tls_strategy=" TLS ").grpc_tls_strategy == "tls"
    monkeypatch.setenv("HATCHET_SERVER_URL", "http://hatchet:8888")
    assert HatchetConfig().server_url == "http://hatchet:8888"
    assert HatchetConfig(server_url="").server_url == "http://hatchet:8888"  # ${UNSET} in YAML
    with pytest.raises(ValueError, match="mode"):
        HatchetConfig(mode="invalid")
    with pytest.raises(ValueError, match="server_url"):
        HatchetConfig(server_url="not-a-url")
    for port in (0, 70000):
        with pytest.raises(ValueError, match="postgres_port"):
            HatchetConfig(postgres_port=port)


def test_connect_without_a_token_says_api_token_required() -> None:
    with pytest.raises(ValueError, match="API token required"):
        HatchetClient(HatchetConfig()).connect()
    assert HatchetConfig().connect_timeout_seconds == 30.0


def test_start_worker_errors_are_runtime_errors_as_the_original() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))
    with pytest.raises(RuntimeError, match="connect"):
        client.start_worker()
    client.connect()
    with pytest.raises(RuntimeError, match="No tasks registered"):
        client.start_worker()
    client.disconnect()


async def test_a_disconnected_client_answers_as_the_original() -> None:
    client = HatchetClient(HatchetConfig())
    assert await client.list_scheduled_tasks() == []
    assert await client.cancel_task("some-id") is False
    assert await client.cancel_cron("cron-some-id") is False
    with pytest.raises(RuntimeError, match="Not connected"):
        await client.get_task_status("some-id")
    with pytest.raises(ValueError, match="not registered"):
        await client.run_task_now("nonexistent")
    with pytest.raises(ValueError, match="not registered"):
        await client.schedule_task("nonexistent", delay_seconds=10)
    with pytest.raises(ValueError, match="delay_seconds must be positive"):
        await client.schedule_task("nonexistent", delay_seconds=0)
    with pytest.raises(LookupError):  # our own type still holds
        await client.run_task_now("nonexistent")


async def test_unknown_names_are_value_errors_where_owlclaw_catches_them(app: App) -> None:
    tools = TaskToolsShape(app.client)
    with pytest.raises(ValueError, match="not registered"):
        await tools.task_create("no_such_workflow", {"x": 1})
    with pytest.raises(ValueError, match="not registered"):
        await app.client.schedule_cron("no_such_workflow", "c", "0 9 * * *", {})
    result = await BuiltInToolsShape(app.client, task="no_such_task").schedule_once(60, "f", "bot", "run-0")
    assert result["error"].startswith("TaskNotDeclaredError: Task 'no_such_task' not registered")


async def test_redeclaring_without_cron_removes_it(app: App) -> None:
    CronRegistryShape({"daily": ("0 9 * * *", 0)}).start(app.client)
    assert len(await app.memory.list_crons("cron_daily")) == 1

    @app.client.task(name="cron_daily")
    async def cron_daily(input: dict[str, Any], ctx: Any) -> None:
        return None

    assert await app.memory.list_crons("cron_daily") == []


def test_timeout_zero_and_dollar_without_braces(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two kept differences: the original read ``timeout=0`` as its 60 s default, and
    substituted ``$VAR`` without braces."""
    with pytest.raises(TaskDefinitionError, match="timeout"):
        app.client.task(name="t", timeout=0)(lambda input, ctx: None)
    monkeypatch.setenv("OWL_NS", "from-env")
    path = tmp_path / "owlclaw.yaml"
    path.write_text("hatchet:\n  namespace: $OWL_NS\n")
    assert HatchetConfig.from_yaml(path).namespace == "$OWL_NS"
    path.write_text("hatchet:\n  namespace: ${OWL_NS}\n")
    assert HatchetConfig.from_yaml(path).namespace == "from-env"


def test_priority_above_three_is_refused_with_what_to_do(app: App) -> None:
    with pytest.raises(TaskDefinitionError, match="priority must be 1, 2 or 3") as info:
        CronRegistryShape({"urgent": ("0 9 * * *", 5)}).start(app.client)
    assert "OwlClaw priority onto 1-3" in str(info.value)
    assert isinstance(info.value, ValueError)
    CronRegistryShape({"normal": ("0 9 * * *", 0)}).start(app.client)  # 0 -> `or 1`
    assert app.memory.tasks["cron_normal"].priority == 1


# --------------------------------------------------------------------------
# item 6: six-field crons mean what croniter (OwlClaw's validator) says


async def test_six_field_cron_fires_when_croniter_says(app: App) -> None:
    CronRegistryShape({}).start(app.client)
    tools = BuiltInToolsShape(app.client)
    expression = "0 9 * * 1-5 30"  # croniter: 09:00:30 on weekdays
    assert croniter.is_valid(expression)
    out = await tools.schedule_cron(expression, "open", "bot", "run-0")
    assert out["schedule_id"].startswith("cron-")
    [cron] = await app.memory.list_crons("agent_scheduled_run")
    expected = croniter(expression, MONDAY_0800).get_next(datetime)
    assert cron.next_run_at == expected == MONDAY_0800 + timedelta(hours=1, seconds=30)
    await app.memory.advance(3600 + 29)
    assert app.memory.clock.now() < expected
    await app.memory.run_until_idle(max_seconds=0)
    await app.memory.advance(1)
    await app.memory.run_until_idle(max_seconds=0)
    registry_runs = [r for r in await app.memory.list_tasks() if r.task_name == "agent_scheduled_run"]
    assert len(registry_runs) == 1 and registry_runs[0].scheduled_at == expected


async def test_declared_six_field_cron_and_bad_ones(app: App) -> None:
    # croniter: minutes 0, 15, 30, 45 at second 0
    CronRegistryShape({"tick": ("*/15 * * * * 0", 0)}).start(app.client)
    [cron] = await app.memory.list_crons("cron_tick")
    assert cron.expression == "0 */15 * * * *"  # the engine's order: seconds first
    assert cron.next_run_at == MONDAY_0800 + timedelta(minutes=15)
    with pytest.raises(InvalidCronError, match="seconds LAST") as info:
        await app.client.schedule_cron("agent_scheduled_run", "c", "0 9 * * 1-5 75", {})
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidCronError, match="0-6"):
        await app.client.schedule_cron("agent_scheduled_run", "c", "0 9 * * 7", {})


# --------------------------------------------------------------------------
# OwlClaw's own bug: CronTriggerRegistry's cron_handler(_ctx) takes one argument


async def test_one_argument_cron_handler_fails_loudly(app: App, caplog: pytest.LogCaptureFixture) -> None:
    registry = CronRegistryShape({"daily": ("0 9 * * *", 0)}, one_arg_handler=True)
    with caplog.at_level(logging.WARNING, logger="owlclaw.integrations.hatchet_client"):
        registry.start(app.client)
    assert "cannot be called with (input, ctx)" in caplog.text
    run_id = await registry.trigger_now("daily")
    await app.memory.run_until_idle(max_seconds=0)
    status = await app.client.get_task_status(run_id)
    assert status["status"] == "failed"
    assert status["error"].startswith("TypeError: cron_daily(_ctx: 'Any')")
    assert "async def cron_daily(input, ctx)" in status["error"]
    assert registry.fired == []


# --------------------------------------------------------------------------
# the other OwlClaw callers, end to end on the virtual clock


async def test_builtin_tools_schedule_then_cancel_by_either_id(app: App) -> None:
    registry = CronRegistryShape({})
    registry.start(app.client)
    tools = BuiltInToolsShape(app.client)
    once = await tools.schedule_once(300, "inventory", "bot-1", "run-0")
    cron = await tools.schedule_cron("0 9 * * 1-5", "open", "bot-1", "run-0")
    assert once["scheduled_at"] == "in 300 seconds"
    pending = await app.client.list_scheduled_tasks(agent_id="bot-1")
    assert [p["id"] for p in pending] == [once["schedule_id"]]
    assert pending[0]["input"]["trigger"] == "schedule_once"
    for schedule_id in (cron["schedule_id"], once["schedule_id"]):
        assert await tools.cancel_schedule(schedule_id) == {"cancelled": True, "schedule_id": schedule_id}
    assert (await tools.cancel_schedule("nope"))["cancelled"] is False
    await app.memory.advance(7 * 24 * 3600)
    assert registry.fired == []


async def test_runtime_bridge_and_mcp_task_tools(app: App) -> None:
    bridge = RuntimeBridgeShape(app.client)
    bridge.register_task()
    tools = TaskToolsShape(app.client)
    created = await tools.task_create("agent_run", {"focus": "now"})
    assert created["status"] == "running"
    await app.memory.run_until_idle(max_seconds=0)
    assert await tools.task_status(created["task_id"]) == {
        "task_id": created["task_id"],
        "status": "completed",
        "result": {"run": "ok", "payload": {"focus": "now"}},
        "error": None,
    }
    later = await tools.task_create("agent_run", {"focus": "later"}, schedule=60)
    assert later["status"] == "scheduled"
    assert (await tools.task_status(later["task_id"]))["status"] == "scheduled"
    assert await tools.task_cancel(later["task_id"]) == {"task_id": later["task_id"], "cancelled": True}
    delayed = await bridge.schedule_task(120, focus="delayed")
    cron_id = await bridge.schedule_cron("agent_run_cron", "0 * * * *", {"focus": "hourly"})
    await app.memory.advance(3600)
    assert (await app.client.get_task_status(delayed))["status"] == "completed"
    assert {"focus": "hourly"} in bridge.inputs
    assert await app.client.cancel_cron(cron_id) is True
