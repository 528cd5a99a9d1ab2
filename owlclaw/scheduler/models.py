"""Value types shared by every backend."""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from owlclaw.scheduler.errors import InvalidScheduleError, NonRetryableError, NotSupportedError
from owlclaw.scheduler.limits import MAX_DELAY_SECONDS, exponential_delay
from owlclaw.scheduler.schedules.spec import Overlap

if TYPE_CHECKING:
    from owlclaw.scheduler.kit.sync import BlockingScheduler
    from owlclaw.scheduler.protocol import Scheduler

__all__ = ["CronInfo", "ScheduleInfo", "TaskContext", "TaskFailure", "TaskInfo", "TaskOptions", "TaskState"]

JSON = Any


class CancelFlag(Protocol):
    """What ``TaskContext.cancelled`` reads: a ``threading.Event``, or anything with ``is_set()``."""

    def is_set(self) -> bool: ...


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
class ScheduleInfo:
    """A schedule, from ``add_schedule``, ``add_cron`` or ``@task(cron=...)``.

    The first five fields are those of the old ``CronInfo`` (an alias of this
    class), in the same order. ``expression`` is the cron (None for an
    ``every`` schedule). ``next_run_at`` is the next nominal time that would
    fire (None while paused, or once the schedule has ended). The policies are
    those of ``ScheduleSpec``; ``skips_pending`` counts what ``skip_schedule``
    still has to skip; ``fired``, ``skipped`` and ``coalesced`` count this
    schedule's occurrences so far (where the backend keeps them).
    """

    id: str
    task_name: str
    expression: str | None
    payload: JSON = None
    next_run_at: datetime | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    jitter: float = 0.0
    overlap: Overlap = Overlap.ALLOW_ALL
    catchup_window: timedelta = timedelta(days=1)
    coalesce: bool = True
    paused: bool = False
    note: str | None = None
    skips_pending: int = 0
    fired: int = 0
    skipped: int = 0
    coalesced: int = 0


#: The listing type of ``list_crons``: the same class as ``ScheduleInfo``.
CronInfo = ScheduleInfo


@dataclass(frozen=True)
class TaskFailure:
    """What ``on_failure`` receives once the last attempt of a run has failed."""

    task_name: str
    task_id: str
    payload: JSON
    error: str  # "ExceptionType: message"
    attempts: int


OnFailure = Callable[[TaskFailure], Any]


@dataclass(frozen=True)
class TaskOptions:
    """What ``@scheduler.task(...)`` declared; validated by ``make_options``."""

    name: str
    func: TaskFunc = field(repr=False)
    retries: int = 0
    timeout: float | None = None
    priority: int = 1
    durable: bool = False
    cron: str | None = None
    timezone: str = "UTC"  # the zone the cron's wall times are read in
    backoff: str | None = None  # "fixed" | "exponential"; None retries at once
    backoff_base: float | None = None
    backoff_max_seconds: float | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    no_retry_on: tuple[type[BaseException], ...] = ()
    on_failure: OnFailure | None = field(default=None, repr=False)
    concurrency: int | None = None
    concurrency_key: str | None = None

    @property
    def backoff_factor(self) -> float | None:
        """The exponential base, as Hatchet calls it (None unless exponential)."""
        return self.backoff_base if self.backoff == "exponential" else None

    def retry_delay(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based)."""
        if self.backoff is None or self.backoff_base is None:
            return 0.0
        if self.backoff == "fixed":
            return float(self.backoff_base)
        # capped (at most MAX_BACKOFF_SECONDS), computed without overflowing at any attempt
        return exponential_delay(self.backoff_base, failed_attempt, self.backoff_max_seconds)

    def should_retry(self, exc: BaseException) -> bool:
        """Whether this error may be retried (retries left aside)."""
        if isinstance(exc, NonRetryableError):
            return False
        if self.no_retry_on and isinstance(exc, self.no_retry_on):
            return False
        return not self.retry_on or isinstance(exc, self.retry_on)

    def will_retry(self, attempt: int, exc: BaseException | None = None) -> bool:
        """Whether failed attempt number ``attempt`` (1-based) is followed by
        another: retries are left and the error may be retried (``exc`` None:
        a timeout, which always may)."""
        return attempt <= self.retries and (exc is None or self.should_retry(exc))

    def concurrency_group(self, payload: Any) -> str | None:
        """The group a run's concurrency is counted in; None when unlimited."""
        if self.concurrency is None:
            return None
        if self.concurrency_key is None:
            return ""
        value = payload.get(self.concurrency_key) if isinstance(payload, dict) else None
        return "" if value is None else str(value)


class TaskContext:
    """What a running task knows about itself; the second argument of every task."""

    #: The nominal time (aware UTC) of the schedule occurrence that fired this
    #: run; None for runs no schedule fired.
    scheduled_for: datetime | None = None
    #: ``"<schedule id>@<nominal time>"``, the same in every process and on
    #: every attempt: a key for making the occurrence's work idempotent.
    occurrence_id: str | None = None

    def __init__(
        self,
        task_id: str,
        task_name: str,
        attempt: int,
        scheduler: Scheduler,
        durable_sleep: Callable[[float], Awaitable[None]] | None = None,
        cancel_event: CancelFlag | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        scheduled_for: datetime | None = None,
        occurrence_id: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.task_name = task_name
        self.attempt = attempt
        self.scheduler = scheduler
        self._durable_sleep = durable_sleep
        self._cancel_event = cancel_event  # the run's (None: never cancelled)
        self._attempt_stopped = False  # this attempt alone: timed out or abandoned
        self._loop = loop  # the worker's, which ctx.sync_scheduler calls
        self._sync_scheduler: BlockingScheduler | None = None
        if scheduled_for is not None or occurrence_id is not None:  # else the class's None
            self.scheduled_for, self.occurrence_id = scheduled_for, occurrence_id

    @property
    def cancelled(self) -> bool:
        """True once ``cancel_task`` was called on this run, or this attempt
        ran past its timeout; stop soon when set (a sync task's thread cannot
        be stopped otherwise)."""
        flag = self._cancel_event
        return self._attempt_stopped or (flag is not None and flag.is_set())

    def _stop_attempt(self) -> None:
        """Set ``cancelled`` for this attempt only (the worker gave up on it)."""
        self._attempt_stopped = True

    @property
    def sync_scheduler(self) -> BlockingScheduler:
        """The scheduler with blocking methods, for sync tasks:
        ``ctx.sync_scheduler.schedule_task("remind", {...}, delay_seconds=60)``.

        Each call runs on the worker's event loop and waits a bounded time.
        Async tasks await ``ctx.scheduler`` instead (a blocking call on the
        event loop raises ``NotSupportedError``).
        """
        if self._sync_scheduler is None:
            if self._loop is None:
                raise NotSupportedError(
                    "ctx.sync_scheduler exists only in a worker's task context; "
                    "this TaskContext was built without an event loop to call"
                )
            from owlclaw.scheduler.kit.sync import BlockingScheduler

            self._sync_scheduler = BlockingScheduler(self.scheduler, self._loop)
        return self._sync_scheduler

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Sleep durably: the wait survives a worker restart. Async tasks only:
        ``await ctx.sleep(seconds)`` in a ``durable=True`` task.

        :raises InvalidScheduleError: ``seconds`` is not a number > 0, or
            over ``MAX_DELAY_SECONDS`` (ten years).
        :raises NotSupportedError: the task was not declared ``durable=True``,
            or this is a sync task (no event loop runs here to sleep on).
        """
        ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        if not ok or not math.isfinite(seconds) or seconds <= 0:
            raise InvalidScheduleError(f"ctx.sleep() takes seconds > 0, got {seconds!r}")
        if seconds > MAX_DELAY_SECONDS:
            raise InvalidScheduleError(
                f"ctx.sleep() takes at most {MAX_DELAY_SECONDS} seconds (ten years), got {seconds!r}; "
                "check the unit (seconds, not milliseconds)"
            )
        if not _on_event_loop():
            raise NotSupportedError(
                f"ctx.sleep() is awaited by async tasks; task {self.task_name!r} is not running on an "
                "event loop here (a sync function?), so the sleep would never happen: "
                "make it `async def` and `await ctx.sleep(...)`"
            )
        if self._durable_sleep is None:
            raise NotSupportedError(
                f"ctx.sleep() needs a durable task: declare "
                f"@scheduler.task(name={self.task_name!r}, durable=True), "
                "or use asyncio.sleep() for a sleep that need not survive a restart"
            )
        return self._durable_sleep(float(seconds))

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, task_name={self.task_name!r}, attempt={self.attempt})"


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
