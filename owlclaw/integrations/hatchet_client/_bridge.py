"""What the OwlClaw adapter needs around a scheduler: its settings, its status
dict, and running coroutines from synchronous code (inline or in a thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from owlclaw.integrations.hatchet_client._config import HatchetConfig
from owlclaw.scheduler.cron import normalize_cron
from owlclaw.scheduler.errors import (
    ConfigError,
    InvalidCronError,
    NotSupportedError,
    SchedulerConnectionError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.protocol import Scheduler

__all__ = [
    "ClientNotConnectedError",
    "Home",
    "NoTasksDeclaredError",
    "TaskNotDeclaredError",
    "drive",
    "hatchet_settings",
    "in_thread",
    "nothing",
    "owlclaw_cron",
    "running_loop",
    "scheduled_dict",
    "status_dict",
]

T = TypeVar("T")

_STATUS = {
    TaskState.SCHEDULED: "scheduled",
    TaskState.QUEUED: "queued",
    TaskState.RUNNING: "running",
    TaskState.SUCCEEDED: "completed",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
}


class ClientNotConnectedError(SchedulerConnectionError, RuntimeError):
    """The ``HatchetClient`` is not connected. A ``ConnectionError``, and a
    ``RuntimeError`` as OwlClaw's original client raised."""


class TaskNotDeclaredError(TaskNotRegisteredError, ValueError):
    """No task of that name is declared on the ``HatchetClient``. A ``LookupError``,
    and a ``ValueError`` as OwlClaw's original client raised (and OwlClaw catches)."""


class NoTasksDeclaredError(NotSupportedError, RuntimeError):
    """``start_worker()`` with no task declared; a ``RuntimeError`` as the original raised."""


def owlclaw_cron(expression: str) -> str:
    """A cron as OwlClaw's code validates it, in the engine's form.

    OwlClaw's tools and ``CronTriggerRegistry`` check expressions with croniter,
    which reads a 6th field as *seconds, last*; the engine reads seconds first.
    A 6-field cron is therefore moved into the engine's order, so it fires when
    OwlClaw's croniter-based status says it will.

    :raises InvalidCronError: not a cron croniter and the engine both accept; the
        message says how to write it.
    """
    if not isinstance(expression, str):
        raise InvalidCronError(f"cron expression must be a string, got {type(expression).__name__}")
    fields = expression.split()
    engine_form = " ".join(fields[5:] + fields[:5]) if len(fields) == 6 else expression
    try:
        return normalize_cron(engine_form)
    except InvalidCronError as exc:
        raise InvalidCronError(
            f"invalid cron expression {expression!r}: write 5 fields 'minute hour day-of-month month "
            "day-of-week' (e.g. '0 9 * * 1-5'), or 6 with seconds LAST as croniter reads them "
            "(e.g. '0 9 * * 1-5 30' for 09:00:30), or an alias such as @daily; days of the week "
            f"are 0-6 (0 is Sunday). ({exc})"
        ) from None


def hatchet_settings(cfg: HatchetConfig) -> dict[str, Any]:
    """The ``scheduler.hatchet`` settings for the adapter's fields.

    :raises ConfigError: no token, saying which key or variable to set. (Plain text to a
        host that is not loopback in production mode is the backend's ConfigError.)
    """
    if cfg.api_token is None:
        raise ConfigError(
            "Hatchet API token required: set hatchet.api_token in owlclaw.yaml "
            "(e.g. api_token: ${HATCHET_API_TOKEN}) or export HATCHET_API_TOKEN"
        )
    # plain text (grpc_tls_strategy: none) is the backend's call: it allows a
    # loopback host in any mode and refuses another host in production mode
    host_port = cfg.effective_grpc_host_port
    settings: dict[str, Any] = {
        "mode": cfg.mode,
        "server_url": cfg.server_url,
        "host_port": host_port,
        "api_token": cfg.api_token.get_secret_value(),
        "namespace": cfg.namespace,
        "tls_strategy": cfg.grpc_tls_strategy,
        "worker_name": cfg.worker_name,
        "slots": cfg.max_concurrent_tasks,
        "connect_timeout_seconds": cfg.connect_timeout_seconds,
    }
    return {k: v for k, v in settings.items() if v is not None}


def status_dict(info: TaskInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "status": _STATUS[info.state],
        "result": info.result,
        "error": info.error,
        "workflow": info.task_name,
        "scheduled_at": info.scheduled_at,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "attempts": info.attempts,
    }


def scheduled_dict(info: TaskInfo) -> dict[str, Any]:
    """A pending schedule as ``list_scheduled_tasks`` shows it; ``scheduled_at`` is its due time."""
    payload = info.payload if isinstance(info.payload, dict) else {}
    return {"id": info.id, "workflow": info.task_name, "scheduled_at": info.scheduled_at, "input": payload}


def drive(coro: Coroutine[Any, Any, T], what: str) -> T:
    """Run a coroutine that never waits (the memory backend's bookkeeping) without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coro.close()
    raise NotSupportedError(f"{what} had to wait for the event loop; call it from outside a running task")


def in_thread(make: Callable[[], Coroutine[Any, Any, T]], *, limit: float, address: str) -> T:
    """Run ``make()`` to completion in a new thread with its own event loop
    (callable from sync code and from inside a running loop alike), for at most
    ``limit`` seconds."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="owlclaw-hatchet-connect", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise SchedulerConnectionError(
            f"Hatchet at {address} did not answer within {limit:g}s; "
            "is the engine running, and are server_url / grpc_host_port right?"
        )
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


class Home:
    """A daemon thread running an event loop, where a memory scheduler that
    ``connect()`` started outside any event loop lives and runs its tasks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="owlclaw-hatchet-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Run ``coro`` in the home loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def forward(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` in the home loop from another event loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self.loop.close()


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def nothing(scheduler: Scheduler) -> None:
    return None
