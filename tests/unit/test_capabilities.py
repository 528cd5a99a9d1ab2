"""Backends declare ``Capabilities``; the CLI, doctor and the OwlClaw adapter act
on the declaration, never on the backend's name. The fakes here are a third
backend ("thirdparty") built on the memory scheduler."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig
from owlclaw.scheduler import Capabilities, Scheduler
from owlclaw.scheduler.cli import session as session_module
from owlclaw.scheduler.doctor import Finding, run_checks


class ThirdParty(MemoryScheduler):
    """A backend neither the CLI nor the adapter knows by name."""

    backend_name = "thirdparty"
    capabilities = Capabilities()  # declares nothing
    started = False
    diagnosed = False

    async def start_worker(self) -> None:
        self.started = True
        await super().start_worker()

    async def diagnose(self) -> list[Finding]:
        self.diagnosed = True
        return [Finding("thirdparty", "ok", "checked by its own diagnose")]


def third(**declared: bool) -> ThirdParty:
    scheduler = ThirdParty(clock=VirtualClock())
    scheduler.capabilities = Capabilities(**declared)
    return scheduler


def test_declarations() -> None:
    assert dataclasses.is_dataclass(Capabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Capabilities().in_process = True  # type: ignore[misc]
    virtual = MemoryScheduler(clock=VirtualClock()).capabilities
    assert virtual == Capabilities(
        in_process=True, virtual_time=True, diagnose=True, start_worker=True, schedules=True
    )
    assert MemoryScheduler().capabilities.virtual_time is False  # the real clock
    assert isinstance(third(), Scheduler)


@pytest.mark.parametrize("start_worker", [True, False])
async def test_cli_session_starts_a_worker_only_where_declared(
    monkeypatch: pytest.MonkeyPatch, start_worker: bool
) -> None:
    scheduler = third(start_worker=start_worker)
    monkeypatch.setattr(session_module, "build_scheduler", lambda app, config: scheduler)
    async with session_module.open_session(None, None) as session:
        assert session.scheduler is scheduler
        assert session.ephemeral is start_worker
    assert scheduler.started is start_worker


@pytest.mark.parametrize("diagnose", [True, False])
async def test_doctor_runs_diagnose_only_where_declared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, diagnose: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    scheduler = third(diagnose=diagnose)
    findings = await run_checks(None, scheduler)
    assert scheduler.diagnosed is diagnose
    assert any(f.check == "thirdparty" for f in findings) is diagnose


@pytest.mark.parametrize("in_process", [True, False])
def test_adapter_keeps_runs_in_this_process_only_where_declared(
    monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    scheduler = third(in_process=in_process, start_worker=in_process)
    client = HatchetClient(HatchetConfig(backend="memory"), scheduler=scheduler)
    helpers: list[str] = []
    # out of process, connect() checks the engine from a helper thread; record that instead
    monkeypatch.setattr(client, "_in_thread", lambda work: helpers.append("helper"))
    client.connect()
    assert scheduler._connected is in_process  # in process: connected inline, in this thread
    assert helpers == ([] if in_process else ["helper"])
    client.disconnect()
