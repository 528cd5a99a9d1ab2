"""OwlClaw's scenarios through ``owlclaw.integrations.hatchet_client`` on the memory backend,
plus its config and the two ``connect()`` errors (no engine needed for those)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig
from owlclaw.integrations.hatchet_client._bridge import status_dict
from owlclaw.integrations.hatchet_client.client import CRON_PREFIX
from owlclaw.scheduler.errors import (
    ConfigError,
    InvalidScheduleError,
    NotSupportedError,
    SchedulerConnectionError,
    TaskNotFoundError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until

TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl"
# shaped like a Hatchet token, so the SDK accepts it and the failure is the connection's
ENGINE_TOKEN = ".".join(
    base64.urlsafe_b64encode(part.encode()).decode().rstrip("=")
    for part in (
        '{"alg":"ES256"}',
        '{"sub":"707d0855-80ab-4e1f-a156-f1c4546cbf52","server_url":"http://127.0.0.1:1",'
        '"grpc_broadcast_address":"127.0.0.1:1"}',
        "not-a-real-signature",
    )
)
MONDAY_0800 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # a Monday


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HATCHET_", "OWLCLAW_")):
            monkeypatch.delenv(name)


class Agent:
    """A client with OwlClaw-like tasks on a virtual clock; ``seen`` records each input."""

    def __init__(self) -> None:
        self.memory = MemoryScheduler(clock=VirtualClock(start=MONDAY_0800))
        self.client = HatchetClient(HatchetConfig(backend="memory"), scheduler=self.memory)
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.client.connect()
        client, seen = self.client, self.seen

        @client.task(name="agent_scheduled_run")
        async def agent_scheduled_run(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            seen.append(("agent_scheduled_run", input))
            return input

        @client.task(name="cron_daily", cron="0 9 * * *", retries=3, priority=1)
        def cron_daily(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            seen.append(("cron_daily", input))
            return {"daily": input}

        @client.task(name="mcp_fail", retries=0)
        async def mcp_fail(input: dict[str, Any], ctx: Any) -> None:
            raise RuntimeError(f"tool failed for {input.get('tool')}")

        @client.task(name="mcp_slow")
        async def mcp_slow(input: dict[str, Any], ctx: Any) -> str:
            await asyncio.sleep(3600)
            return "finished"

        @client.durable_task(name="agent_heartbeat", retries=0)
        async def agent_heartbeat(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
            await ctx.aio_sleep_for(timedelta(minutes=30))
            return {"woke": True, "run": ctx.workflow_run_id, "attempt": ctx.attempt_number}

        @client.task(name="not_durable", retries=0)
        async def not_durable(input: dict[str, Any], ctx: Any) -> None:
            await ctx.aio_sleep_for(timedelta(seconds=1))

        self.cron_daily = cron_daily

    def inputs(self, task: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.seen if name == task]


@pytest.fixture
async def agent() -> AsyncIterator[Agent]:
    a = Agent()
    yield a
    a.client.disconnect()
    await asyncio.sleep(0)


# --------------------------------------------------------------------------
# OwlClaw's scenarios


async def test_1_an_agent_run_schedules_its_next_run(agent: Agent) -> None:
    payload = {
        "agent_id": "bot-1",
        "trigger": "schedule_once",
        "focus": "inventory",
        "scheduled_by_run_id": "run-0",
        "tenant_id": "default",
    }
    first = await agent.client.schedule_task("agent_scheduled_run", 300, **payload)
    second = await agent.client.schedule_task("agent_scheduled_run", delay_seconds=300, **payload)
    assert first != second
    await agent.memory.advance(299)
    assert agent.inputs("agent_scheduled_run") == []
    await agent.memory.advance(1)
    assert agent.inputs("agent_scheduled_run") == [payload, payload]
    assert (await agent.client.get_task_status(first))["status"] == "completed"
    with pytest.raises(InvalidScheduleError, match="delay_seconds must be positive"):
        await agent.client.schedule_task("agent_scheduled_run", 0, agent_id="bot-1")


async def test_2_cancel_by_id_tries_task_then_cron(agent: Agent) -> None:
    task_id = await agent.client.schedule_task("agent_scheduled_run", 600, agent_id="bot-2")
    cron_id = await agent.client.schedule_cron("agent_scheduled_run", "agent_cron_bot_2", "0 9 * * 1-5", {})
    assert cron_id != task_id
    # OwlClaw's order: cancel_task first, then cancel_cron
    assert await agent.client.cancel_task(task_id) is True
    assert await agent.client.cancel_task(cron_id) is False
    assert await agent.client.cancel_cron(cron_id) is True
    assert await agent.client.cancel_cron(task_id) is False
    for unknown in ("no-such-id", "cron-no-such-id", ""):
        assert await agent.client.cancel_task(unknown) is False
        assert await agent.client.cancel_cron(unknown) is False
    assert await agent.client.cancel_task(task_id) is False  # already cancelled
    assert (await agent.client.get_task_status(task_id))["status"] == "cancelled"
    await agent.memory.advance(7 * 24 * 3600)
    assert agent.inputs("agent_scheduled_run") == []


async def test_3_schedule_cron_fires_on_weekdays_and_cancel_cron_stops_it(agent: Agent) -> None:
    cron_id = await agent.client.schedule_cron(
        workflow_name="agent_scheduled_run",
        cron_name="agent_cron_bot_3",
        expression="0 9 * * 1-5",
        input_data={"agent_id": "bot-3", "trigger": "cron"},
        additional_metadata={"agent_id": "bot-3"},
    )
    assert cron_id.startswith("cron-")
    await agent.memory.advance(7 * 24 * 3600)  # Monday 08:00 to the next Monday 08:00
    assert agent.inputs("agent_scheduled_run") == [{"agent_id": "bot-3", "trigger": "cron"}] * 5
    assert await agent.client.cancel_cron(cron_id) is True
    await agent.memory.advance(7 * 24 * 3600)
    assert len(agent.inputs("agent_scheduled_run")) == 5
    assert await agent.client.cancel_cron(cron_id) is False


async def test_4_static_cron_returns_the_function_and_runs_by_hand(agent: Agent) -> None:
    assert agent.cron_daily.__name__ == "cron_daily"
    assert agent.cron_daily({"direct": True}, None) == {"daily": {"direct": True}}  # unchanged
    run_id = await agent.client.run_task_now("cron_daily", tenant_id="default", focus="daily report")
    await agent.memory.run_until_idle(max_seconds=0)
    assert (await agent.client.get_task_status(run_id))["result"] == {
        "daily": {"tenant_id": "default", "focus": "daily report"}
    }
    await agent.memory.advance(3600)  # 09:00
    assert agent.inputs("cron_daily")[-1] == {}


async def test_5_mcp_task_lifecycle(agent: Agent) -> None:
    ok = await agent.client.run_task_now("agent_scheduled_run", tool="lookup", args={"q": 1})
    await agent.memory.run_until_idle(max_seconds=0)
    status = await agent.client.get_task_status(ok)
    assert {k: status[k] for k in ("id", "status", "result", "error")} == {
        "id": ok,
        "status": "completed",
        "result": {"tool": "lookup", "args": {"q": 1}},
        "error": None,
    }
    failed = await agent.client.run_task_now("mcp_fail", tool="x")
    await agent.memory.run_until_idle(max_seconds=0)
    status = await agent.client.get_task_status(failed)
    assert status["status"] == "failed"
    assert status["error"] == "RuntimeError: tool failed for x"

    slow = await agent.client.run_task_now("mcp_slow")
    await asyncio.sleep(0)  # it sleeps in real time: the worker has started it
    assert (await agent.client.get_task_status(slow))["status"] == "running"
    assert await agent.client.cancel_task(slow) is True
    assert (await agent.client.get_task_status(slow))["status"] == "cancelled"
    assert await agent.client.cancel_task(slow) is False
    with pytest.raises(TaskNotFoundError):
        await agent.client.get_task_status("no-such-id")
    cron_id = await agent.client.schedule_cron("agent_scheduled_run", "c", "@daily", {})
    with pytest.raises(TaskNotFoundError, match="cron id"):
        await agent.client.get_task_status(cron_id)


async def test_6_heartbeat_lists_one_agents_pending_schedules_with_their_due_time(agent: Agent) -> None:
    a1 = await agent.client.schedule_task("agent_scheduled_run", 900, agent_id="a", n=1)
    a2 = await agent.client.schedule_task("agent_scheduled_run", 300, agent_id="a", n=2)
    await agent.client.schedule_task("agent_scheduled_run", 300, agent_id="b")
    a3 = await agent.client.schedule_task("agent_scheduled_run", 400, agent_id="a", n=3)
    await agent.client.cancel_task(a3)
    listed = await agent.client.list_scheduled_tasks(agent_id="a")
    assert [(t["id"], t["workflow"], t["scheduled_at"]) for t in listed] == [
        (a2, "agent_scheduled_run", MONDAY_0800 + timedelta(seconds=300)),
        (a1, "agent_scheduled_run", MONDAY_0800 + timedelta(seconds=900)),
    ]
    assert [t["input"]["n"] for t in listed] == [2, 1]
    assert len(await agent.client.list_scheduled_tasks(agent_id="a", n=1)) == 1
    assert await agent.client.list_scheduled_tasks(agent_id="nobody") == []
    await agent.memory.advance(300)  # a2 fired: no longer pending
    assert [t["id"] for t in await agent.client.list_scheduled_tasks(agent_id="a")] == [a1]


async def test_7_durable_sleep_completes(agent: Agent) -> None:
    """Killing and restarting a worker mid-sleep is a Hatchet-only scenario
    (tests/integration/test_owlclaw_adapter_hatchet.py): memory runs die with the
    process. Here: the durable sleep itself, and the error outside durable_task."""
    run_id = await agent.client.run_task_now("agent_heartbeat")
    await agent.memory.advance(29 * 60)
    assert (await agent.client.get_task_status(run_id))["status"] == "running"
    await agent.memory.advance(60)
    status = await agent.client.get_task_status(run_id)
    assert status["status"] == "completed"
    assert status["result"] == {"woke": True, "run": run_id, "attempt": 1}

    plain = await agent.client.run_task_now("not_durable")
    await agent.memory.run_until_idle(max_seconds=0)
    status = await agent.client.get_task_status(plain)
    assert status["status"] == "failed"
    assert "durable_task" in status["error"]


def test_8_config_from_owlclaw_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(
        "app:\n  name: mionyee\n"
        "hatchet:\n"
        "  server_url: https://hatchet.example.com/\n"
        "  api_token: ${HATCHET_API_TOKEN}\n"
        "  namespace: ${OWL_NS:-owl-dev}\n"
        "  mode: production\n"
        "  postgres_password: ${HATCHET_DB_PASSWORD}\n"
        "  max_concurrent_tasks: 4\n"
        "  worker_name: owlclaw-worker-1\n"
    )
    monkeypatch.setenv("HATCHET_API_TOKEN", TOKEN)
    monkeypatch.setenv("HATCHET_DB_PASSWORD", "p@ss:word")
    config = HatchetConfig.from_yaml(path)
    assert config.server_url == "https://hatchet.example.com"
    assert config.api_token is not None and config.api_token.get_secret_value() == TOKEN
    assert config.namespace == "owl-dev"
    assert config.effective_grpc_host_port == "hatchet.example.com:7077"
    assert config.max_concurrent_tasks == 4
    assert config.backend == "hatchet"
    assert config.postgres_url() == "postgresql://hatchet:p%40ss%3Aword@localhost:5432/hatchet"
    for text in (repr(config), str(config)):
        assert TOKEN not in text and "p@ss" not in text

    # an unset ${VAR} reads as unset, then the HATCHET_* fallbacks apply
    monkeypatch.delenv("HATCHET_API_TOKEN")
    monkeypatch.setenv("HATCHET_SERVER_URL", "http://env.example:8080")
    monkeypatch.setenv("HATCHET_GRPC_HOST_PORT", "env.example:7070")
    monkeypatch.setenv("HATCHET_GRPC_TLS_STRATEGY", "none")
    fallback = HatchetConfig.from_yaml(_yaml(tmp_path, "api_token: ${HATCHET_API_TOKEN}\n  mode: lite"))
    assert fallback.api_token is None
    assert fallback.server_url == "http://env.example:8080"
    assert fallback.effective_grpc_host_port == "env.example:7070"
    assert fallback.grpc_tls_strategy == "none"
    monkeypatch.setenv("HATCHET_API_TOKEN", TOKEN)
    assert HatchetConfig.from_yaml(_yaml(tmp_path, "mode: lite")).api_token is not None

    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "memory")
    assert HatchetConfig.from_yaml(_yaml(tmp_path, "backend: hatchet")).backend == "memory"


def test_8_bad_config_names_file_key_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        HatchetConfig.from_yaml(_yaml(tmp_path, "server_url: hatchet:7077"))
    assert "hatchet.server_url" in str(info.value) and "http://" in str(info.value)
    with pytest.raises(ConfigError, match=r"hatchet\.mode"):
        HatchetConfig.from_yaml(_yaml(tmp_path, "mode: cloud"))
    with pytest.raises(ConfigError, match=r"hatchet\.max_concurent_tasks: unknown setting"):
        HatchetConfig.from_yaml(_yaml(tmp_path, "max_concurent_tasks: 3"))
    with pytest.raises(ConfigError, match="cannot read"):
        HatchetConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"hatchet\.api_token") as info:
        HatchetConfig.from_yaml(_yaml(tmp_path, "api_token: [" + TOKEN + "]"))
    assert TOKEN not in str(info.value)


def test_8_connect_without_a_token_raises_value_error() -> None:
    client = HatchetClient(HatchetConfig(server_url="http://127.0.0.1:1"))
    with pytest.raises(ValueError, match="HATCHET_API_TOKEN"):
        client.connect()
    with pytest.raises(SchedulerConnectionError, match="connect"):
        client.scheduler  # noqa: B018 - still not connected
    # the same settings on memory need no token
    HatchetClient(HatchetConfig(server_url="http://127.0.0.1:1", backend="memory")).connect()


def test_8_connect_to_nothing_raises_connection_error_naming_the_host() -> None:
    port = _free_port()
    config = HatchetConfig(
        server_url=f"http://127.0.0.1:{port}", api_token=ENGINE_TOKEN, mode="lite", connect_timeout_seconds=3
    )
    with pytest.raises(ConnectionError) as info:
        HatchetClient(config).connect()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert ENGINE_TOKEN not in str(info.value)


def test_8_connect_times_out_on_a_server_that_never_answers() -> None:
    with _silent_server() as port:
        config = HatchetConfig(
            server_url=f"http://127.0.0.1:{port}",
            api_token=ENGINE_TOKEN,
            mode="lite",
            connect_timeout_seconds=1,
        )
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=r"TimeoutError|did not answer") as info:
            HatchetClient(config).connect()
        assert time.monotonic() - started < 30
        assert f"127.0.0.1:{port}" in str(info.value)
        assert ENGINE_TOKEN not in str(info.value)


# --------------------------------------------------------------------------
# the adapter's own rules


async def test_awaited_calls_need_connect_first() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))

    @client.task(name="anything")
    async def anything(input: dict[str, Any], ctx: Any) -> None:
        return None

    with pytest.raises(SchedulerConnectionError, match=r"client\.connect\(\)"):
        await client.run_task_now("anything")
    with pytest.raises(RuntimeError, match="Not connected"):  # as the original client
        await client.get_task_status("some-id")
    # an unknown name is reported first, connected or not, as the original did
    with pytest.raises(ValueError, match="not registered"):
        await client.run_task_now("nothing-by-that-name")


async def test_tasks_declared_before_or_after_connect_run_on_the_real_clock() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))

    @client.task(name="before")
    async def before(input: dict[str, Any], ctx: Any) -> str:
        return f"before {input['x']}"

    client.connect()

    @client.task(name="after")
    def after(input: dict[str, Any], ctx: Any) -> str:
        return f"after {input['x']}"

    ids = [await client.run_task_now("before", x=1), await client.run_task_now("after", x=2)]
    results = []
    for run_id in ids:  # the in-process worker runs them without start_worker()
        await client.scheduler.wait_for_task(run_id, timeout=5)
        results.append((await client.get_task_status(run_id))["result"])
    assert results == ["before 1", "after 2"]
    with pytest.raises(TaskNotRegisteredError, match="before"):
        await client.run_task_now("unknown")
    with pytest.raises(NotSupportedError, match="start_worker"):
        client.start_worker()
    client.disconnect()
    await asyncio.sleep(0)


async def test_reconnect_in_the_same_loop_runs_tasks_again(agent: Agent) -> None:
    await agent.client.run_task_now("agent_scheduled_run")  # starts the in-process worker
    agent.client.disconnect()  # stops it
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(SchedulerConnectionError):
        await agent.client.run_task_now("agent_scheduled_run")
    agent.client.connect()
    run_id = await agent.client.run_task_now("agent_scheduled_run", again=True)
    await agent.memory.run_until_idle(max_seconds=0)
    assert (await agent.client.get_task_status(run_id))["status"] == "completed"


async def test_pause_task_pauses_a_tasks_crons_and_resume_task_resumes_them(agent: Agent) -> None:
    weekday = await agent.client.schedule_cron("cron_daily", "extra", "30 9 * * *", {"extra": True})
    assert agent.client.pause_task("cron_daily") is True
    assert agent.client.pause_task("cron_daily") is False  # already paused
    listed = await agent.memory.list_schedules("cron_daily")
    assert len(listed) == 2 and all(c.paused and "pause_task('cron_daily')" in (c.note or "") for c in listed)
    await agent.memory.advance(24 * 3600)
    assert agent.inputs("cron_daily") == []  # skipped while paused, not caught up later
    assert agent.client.resume_task("cron_daily") is True
    assert agent.client.resume_task("cron_daily") is False
    await agent.memory.advance(24 * 3600)
    assert sorted(map(str, agent.inputs("cron_daily"))) == ["{'extra': True}", "{}"]
    # the id schedule_cron returned before the pause still cancels it
    assert await agent.client.cancel_cron(weekday) is True
    assert [c.expression for c in await agent.memory.list_crons("cron_daily")] == ["0 9 * * *"]
    with pytest.raises(TaskNotRegisteredError):
        agent.client.pause_task("nope")


async def test_schedule_cron_takes_a_time_zone(agent: Agent) -> None:
    cron_id = await agent.client.schedule_cron(
        "cron_daily", "paris", "0 9 * * *", {"tz": "paris"}, timezone="Europe/Paris"
    )
    (info,) = [c for c in await agent.memory.list_schedules("cron_daily") if c.payload == {"tz": "paris"}]
    assert CRON_PREFIX + info.id == cron_id and info.timezone == "Europe/Paris"
    assert info.next_run_at is not None and info.next_run_at.hour == 8  # 09:00 CET is 08:00 UTC in winter
    with pytest.raises(InvalidScheduleError, match="Mars/Olympus"):
        await agent.client.schedule_cron("cron_daily", "x", "0 9 * * *", {}, timezone="Mars/Olympus")


async def test_cancel_cron_while_paused_keeps_it_from_coming_back(agent: Agent) -> None:
    cron_id = await agent.client.schedule_cron("cron_daily", "extra", "30 9 * * *", {"extra": True})
    agent.client.pause_task("cron_daily")
    assert await agent.client.cancel_cron(cron_id) is True
    agent.client.resume_task("cron_daily")
    assert [c.payload for c in await agent.memory.list_crons("cron_daily")] == [{}]


def test_connect_outside_any_loop_runs_memory_in_its_own_thread() -> None:
    """connect() outside an event loop leaves memory running in a loop of its own:
    every loop's calls reach it, and its runs outlive each asyncio.run()."""
    client = HatchetClient(HatchetConfig(backend="memory"))

    @client.task(name="echo")
    async def echo(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return input

    client.connect()

    async def run_and_wait(**payload: Any) -> dict[str, Any]:
        run_id = await client.run_task_now("echo", **payload)
        status: dict[str, Any] = await poll_until(
            lambda: client.get_task_status(run_id), lambda s: s["status"] == "completed", timeout=10
        )
        return status

    async def from_two_loops() -> list[dict[str, Any]]:
        other = asyncio.to_thread(asyncio.run, run_and_wait(n=3))
        return list(await asyncio.gather(run_and_wait(n=2), other))

    first = asyncio.run(run_and_wait(n=1))
    assert [s["result"] for s in asyncio.run(from_two_loops())] == [{"n": 2}, {"n": 3}]
    assert asyncio.run(client.get_task_status(first["id"]))["result"] == {"n": 1}
    client.disconnect()
    client.connect()  # memory keeps its runs across a reconnect
    assert asyncio.run(client.get_task_status(first["id"]))["status"] == "completed"
    client.disconnect()


async def test_memory_runs_belong_to_the_loop_that_connected() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))

    @client.task(name="echo")
    async def echo(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return input

    client.connect()  # in this running loop: its worker runs here
    with pytest.raises(NotSupportedError, match="another event loop"):
        await asyncio.to_thread(asyncio.run, client.run_task_now("echo"))
    run_id = await client.run_task_now("echo", n=1)
    await poll_until(lambda: client.get_task_status(run_id), lambda s: s["status"] == "completed", timeout=10)
    client.disconnect()
    await asyncio.sleep(0)


# --------------------------------------------------------------------------
# helpers


def _yaml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(f"hatchet:\n  {body}\n")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A loopback server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(sock.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        sock.close()


# --------------------------------------------------------------------------
# the status dict: one string per state, as the migration guide lists them

_ADAPTER_STATUS = {
    TaskState.SCHEDULED: "scheduled",
    TaskState.QUEUED: "queued",
    TaskState.RUNNING: "running",
    TaskState.SUCCEEDED: "completed",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
}


@pytest.mark.parametrize("state", list(TaskState), ids=lambda s: s.value)
def test_status_dict_names_each_state_as_owlclaw_did(state: TaskState) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    info = TaskInfo(
        id="run-1",
        task_name="remind",
        state=state,
        payload={"user": "ada"},
        scheduled_at=at,
        started_at=at + timedelta(seconds=1),
        finished_at=at + timedelta(seconds=2),
        attempts=2,
        result={"ok": True},
        error="ValueError: x",
    )
    assert status_dict(info) == {
        "id": "run-1",
        "status": _ADAPTER_STATUS[state],
        "result": {"ok": True},
        "error": "ValueError: x",
        "workflow": "remind",
        "scheduled_at": at,
        "started_at": at + timedelta(seconds=1),
        "finished_at": at + timedelta(seconds=2),
        "attempts": 2,
    }
