"""Helpers of the fault tests: an engine target, workers of ``fault_app`` in
subprocesses, and the events those workers record."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from processes import WorkerProcess, worker_command

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import poll_until

HERE = Path(__file__).parent
APP = "fault_app:scheduler"


@dataclass
class Target:
    """An engine and a namespace of one test."""

    token: str = field(repr=False)
    host_port: str
    server_url: str
    namespace: str = field(default_factory=lambda: f"owlclaw-fault-{uuid.uuid4().hex[:10]}")

    @classmethod
    def of(cls, engine: Any) -> Target:
        """From the session's ``hatchet_engine`` or an ``EngineConnection``."""
        return cls(engine.token, engine.host_port, engine.server_url)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        section = {
            "mode": "lite",
            "host_port": self.host_port,
            "server_url": self.server_url,
            "tls_strategy": "none",
            "namespace": self.namespace,
        }
        section.update(overrides)
        return section

    def scheduler(self, **overrides: Any) -> HatchetScheduler:
        """A client that knows the fault app's tasks."""
        from fault_app import register

        config = HatchetConfig.model_validate({"api_token": self.token, **self.settings(**overrides)})
        scheduler = HatchetScheduler(config)
        register(scheduler)
        return scheduler


class FaultWorker(WorkerProcess):
    """``owlclaw-scheduler worker fault_app:scheduler`` in a subprocess."""

    def __init__(self, target: Target, directory: Path, **settings: Any) -> None:
        self.target = target
        self.name = f"fw{uuid.uuid4().hex[:8]}"
        config_path = directory / f"{self.name}.yaml"
        section = target.settings(worker_name=self.name, **settings)
        document = {"scheduler": {"backend": "hatchet", "hatchet": section}}
        config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_CLIENT_", "OWLCLAW_"))}
        env.update(
            OWLCLAW_CONFIG=str(config_path),
            OWLCLAW_SCHEDULER_BACKEND="hatchet",
            OWLCLAW_FAULT_DIR=str(directory),
            HATCHET_CLIENT_TOKEN=target.token,
            PYTHONUNBUFFERED="1",
        )
        super().__init__(worker_command(APP), env, directory / f"{self.name}.log", cwd=HERE)

    async def started(self) -> FaultWorker:
        """Start the process; return once the engine lists it ACTIVE."""
        await asyncio.to_thread(self.start().wait_active, self.target, self.name)
        return self


@dataclass(frozen=True)
class Event:
    kind: str
    task_id: str
    attempt: int
    pid: int
    at: float


def read_events(directory: Path) -> list[Event]:
    path = directory / "events.log"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        kind, task_id, attempt, pid, at = line.split()
        events.append(Event(kind, task_id, int(attempt), int(pid), float(at)))
    return events


def count(events: list[Event], kind: str) -> Counter[str]:
    return Counter(e.task_id for e in events if e.kind == kind)


async def wait_for_event(directory: Path, kind: str, task_id: str, timeout: float = 60.0) -> Event:

    def matching() -> list[Event]:
        return [e for e in read_events(directory) if e.kind == kind and e.task_id == task_id]

    found = await poll_until(
        matching, timeout=timeout, interval=0.1, what=f"a {kind!r} event for task {task_id} in the event log"
    )
    return found[0]


async def wait_final(scheduler: HatchetScheduler, task_ids: list[str], timeout: float) -> dict[str, Any]:
    """Final TaskInfo of every id, polling a few at a time."""
    infos: dict[str, Any] = {}
    semaphore = asyncio.Semaphore(8)

    async def one(task_id: str) -> None:
        async with semaphore:
            infos[task_id] = await scheduler.wait_for_task(task_id, timeout=timeout)

    await asyncio.gather(*(one(t) for t in task_ids))
    return infos


__all__ = [
    "Event",
    "FaultWorker",
    "Target",
    "TaskState",
    "count",
    "read_events",
    "wait_final",
    "wait_for_event",
]
