"""Value types shared by every backend."""

from __future__ import annotations

import enum
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from owlclaw.scheduler.errors import NotSupportedError

if TYPE_CHECKING:
    from owlclaw.scheduler.protocol import Scheduler

__all__ = ["CronInfo", "TaskContext", "TaskInfo", "TaskOptions", "TaskState"]

JSON = Any
TaskFunc = Callable[[Any, "TaskContext"], Any]


class TaskState(enum.StrEnum):
    """Where a task is in its life. The last three are final."""

    SCHEDULED = "scheduled"  # waiting for its due time
    QUEUED = "queued"  # due, waiting for a worker slot (also between retries)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of one task run, from ``get_task_status`` or a listing."""

    id: str
    task_name: str
    state: TaskState
    payload: JSON = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    result: JSON = None
    error: str | None = None


@dataclass(frozen=True)
class CronInfo:
    """A cron trigger, from ``add_cron`` or ``@task(cron=...)``."""

    id: str
    task_name: str
    expression: str
    payload: JSON = None
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class TaskOptions:
    """What ``@scheduler.task(...)`` declared; validated by ``define_task``."""

    name: str
    func: TaskFunc = field(repr=False)
    retries: int = 0
    timeout: float | None = None
    priority: int = 1
    durable: bool = False
    cron: str | None = None
    backoff_factor: float | None = None
    backoff_max_seconds: float | None = None

    def retry_delay(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based)."""
        if not self.backoff_factor:
            return 0.0
        delay = float(self.backoff_factor**failed_attempt)
        if self.backoff_max_seconds is not None:
            delay = min(delay, self.backoff_max_seconds)
        return delay


class TaskContext:
    """What a running task knows about itself; the second argument of every task."""

    def __init__(
        self,
        *,
        task_id: str,
        task_name: str,
        attempt: int,
        scheduler: Scheduler,
        durable_sleep: Callable[[float], Awaitable[None]] | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.task_id = task_id
        self.task_name = task_name
        self.attempt = attempt
        self.scheduler = scheduler
        self._durable_sleep = durable_sleep
        self._cancel_event = cancel_event or threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel_task`` was called on this run; stop soon when set."""
        return self._cancel_event.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep durably: the wait survives a worker restart.

        :raises NotSupportedError: the task was not declared ``durable=True``.
        """
        if self._durable_sleep is None:
            raise NotSupportedError(
                f"ctx.sleep() needs a durable task: declare "
                f"@scheduler.task(name={self.task_name!r}, durable=True), "
                "or use asyncio.sleep() for a sleep that need not survive a restart"
            )
        await self._durable_sleep(float(seconds))

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, task_name={self.task_name!r}, attempt={self.attempt})"
