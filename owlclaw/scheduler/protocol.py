"""The one interface every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

from owlclaw.scheduler.models import CronInfo, OnFailure, ScheduleInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.schedules.spec import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_COALESCE,
    DEFAULT_OVERLAP,
    Overlap,
)

__all__ = ["Capabilities", "Scheduler", "VirtualClockScheduler"]

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="Scheduler")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the protocol, declared by the backend so
    callers (CLI, doctor, adapters, the conformance suite) need not guess from
    its name or by trying."""

    #: its runs execute in this process's event loop, so they live and die with it
    in_process: bool = False
    #: its clock is virtual: ``await scheduler.advance(seconds)`` moves time
    #: and ``scheduler.clock.now()`` reads it
    virtual_time: bool = False
    #: it has ``async def diagnose(self) -> list[Finding]`` for ``doctor``, called once connected
    diagnose: bool = False
    #: ``start_worker()`` runs a worker inside the running event loop; without it,
    #: workers are processes of their own (``run_worker()``) and ``start_worker``
    #: raises ``NotSupportedError``
    start_worker: bool = False
    #: it keeps schedules (``add_schedule``, time zones, pause, skip, preview,
    #: backfill, catch-up, overlap policies); without it only UTC ``add_cron``,
    #: ``remove_cron``/``remove_schedule`` and the listings work, and the other
    #: schedule calls raise ``NotSupportedError``
    schedules: bool = False


@runtime_checkable
class Scheduler(Protocol):
    """Run tasks now, later, at a time or on a cron; cancel; inspect; sleep durably.

    Payloads and results are JSON. Times are timezone-aware UTC.

    ``capabilities`` declares what the backend can do beyond this interface
    (see :class:`Capabilities`); a backend sets it on its class, or as a
    property when it depends on the instance (e.g. a virtual clock).
    """

    backend_name: str

    @property
    def capabilities(self) -> Capabilities:
        """What this scheduler can do beyond the protocol."""
        ...

    @property
    def tasks(self) -> Mapping[str, TaskOptions]:
        """The registered tasks by name (read-only)."""
        ...

    def task(
        self,
        name: str | None = None,
        *,
        cron: str | None = None,
        timezone: str = "UTC",
        retries: int = 0,
        timeout: float | None = None,
        priority: int = 1,
        durable: bool = False,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff: str | None = None,
        backoff_base: float | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        no_retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        on_failure: OnFailure | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> Callable[[F], F]:
        """Register ``func(payload, ctx)`` as a task; returns it unchanged.

        Retries: a failed attempt is retried while ``retries`` remain, unless the
        error is a ``NonRetryableError``, matches ``no_retry_on``, or
        ``retry_on`` is given and it does not match. Between attempts the run
        waits ``backoff_base`` seconds (``backoff="fixed"``, whole seconds) or
        ``backoff_base ** n`` seconds after the n-th failure, capped at
        ``backoff_max_seconds`` (``backoff="exponential"``; base 2 by default;
        ``backoff_factor=F`` is short for it). Without ``backoff`` it retries at once.

        ``on_failure(TaskFailure)`` (sync or async) runs once, in the worker,
        after the last attempt failed. ``concurrency=N`` runs at most N at once
        (per value of the payload field ``concurrency_key`` if given); the rest
        wait queued.

        :raises TaskDefinitionError: bad name, retries, timeout, priority,
            backoff, retry rules, on_failure or concurrency.
        ``cron`` fires the task on a schedule whose wall times are read in
        ``timezone`` (an IANA name; see ``add_cron``).

        :raises InvalidCronError: ``cron`` is not a valid expression.
        """
        ...

    def add_tasks(self, tasks: Iterable[TaskOptions]) -> None:
        """Register tasks declared on another scheduler (e.g. your app's, in tests).

        :raises TaskDefinitionError: a task of the same name is already registered.
        """
        ...

    async def connect(self) -> None:
        """Reach the engine and register declared crons.

        :raises SchedulerConnectionError: the engine cannot be reached or refuses the token.
        """
        ...

    async def disconnect(self) -> None: ...

    async def __aenter__(self: S) -> S: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        """Queue a run now; returns its id. ``priority`` (1-3) overrides the
        task's for this run: when slots are full, higher runs first.

        :raises TaskNotRegisteredError: no task of that name.
        :raises PayloadError: the payload is not a JSON object.
        :raises InvalidScheduleError: ``priority`` is not 1, 2 or 3.
        """
        ...

    async def schedule_task(
        self,
        task_name: str,
        payload: Any = None,
        *,
        delay_seconds: float | None = None,
        at: datetime | None = None,
        priority: int | None = None,
    ) -> str:
        """Run once after ``delay_seconds`` or at ``at``; returns an id that
        ``get_task_status`` and ``cancel_task`` accept before and after it fires.

        :raises InvalidScheduleError: neither or both given, delay <= 0, naive ``at``,
            ``priority`` not 1, 2 or 3.
        :raises TaskNotRegisteredError: no task of that name.
        :raises PayloadError: the payload is not a JSON object.
        """
        ...

    async def add_cron(
        self, task_name: str, expression: str, payload: Any = None, *, timezone: str = "UTC"
    ) -> str:
        """Run on a cron read in ``timezone``; returns a schedule id. The short
        form of ``add_schedule(task_name, payload, cron=expression,
        timezone=timezone, overlap="allow_all")``: runs may overlap, as crons'
        always did.

        :raises InvalidCronError: the expression is not valid.
        :raises InvalidScheduleError: unknown ``timezone``.
        :raises TaskNotRegisteredError: no task of that name.
        :raises NotSupportedError: a zone other than UTC on a backend without
            ``capabilities.schedules``.
        """
        ...

    async def remove_cron(self, cron_id: str) -> None:
        """``remove_schedule``'s other name. :raises TaskNotFoundError: no such id."""
        ...

    async def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        """``list_schedules``'s other name (``CronInfo`` is ``ScheduleInfo``)."""
        ...

    async def add_schedule(
        self,
        task_name: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        start: datetime | None = None,
        end: datetime | None = None,
        jitter: float = 0.0,
        overlap: Overlap | str = DEFAULT_OVERLAP,
        catchup_window: timedelta | float = DEFAULT_CATCHUP_WINDOW,
        coalesce: bool = DEFAULT_COALESCE,
    ) -> str:
        """Fire ``task_name`` on ``cron`` (wall time in ``timezone``) or ``every``
        (elapsed time from ``start``), between ``start`` and ``end``; returns
        the schedule id. The rules and defaults are in docs/schedules.md
        (``ScheduleSpec``): overlap ``"skip"``, a one-day catch-up window,
        coalesced.

        :raises InvalidScheduleError: both or neither of cron/every, unknown
            zone, naive or inverted start/end, bad jitter, overlap or window.
        :raises InvalidCronError: the expression is not valid.
        :raises TaskNotRegisteredError: no task of that name.
        :raises PayloadError: the payload is not a JSON object.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def list_schedules(self, task_name: str | None = None) -> list[ScheduleInfo]:
        """Every schedule (crons included), of ``task_name`` only if given."""
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """:raises TaskNotFoundError: no schedule has that id."""
        ...

    async def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        """Change a schedule in place: ``payload`` or any rule or policy of
        ``add_schedule`` (``cron=`` replaces an ``every`` and the other way
        round). Its id, pause, note and pending skips stay; occurrences already
        handled are not fired again; the next fires by the new rule.

        :raises TypeError: a name ``add_schedule`` does not take.
        :raises InvalidScheduleError: the rule it makes is invalid (as ``add_schedule``).
        :raises TaskNotFoundError: no schedule has that id.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; runs it already fired go on.

        :raises TaskNotFoundError: no schedule has that id."""
        ...

    async def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        """Stop firing until ``resume_schedule``; occurrences that fall while
        paused are skipped, not caught up. ``note`` says who paused and why.

        :raises TaskNotFoundError: no schedule has that id.
        :raises InvalidScheduleError: ``note`` is not a string (or is too long).
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def resume_schedule(self, schedule_id: str) -> None:
        """Fire again from now on (a schedule not paused is left as it is).

        :raises TaskNotFoundError: no schedule has that id.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def skip_schedule(self, schedule_id: str, count: int = 1) -> None:
        """Skip the next ``count`` occurrences that would fire (added to any
        skip still pending).

        :raises InvalidScheduleError: ``count`` is not an int >= 1.
        :raises TaskNotFoundError: no schedule has that id.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> list[datetime]:
        """The nominal times (aware UTC) that would fire in [``start``,
        ``end``), given the schedule as it is now: its pause, pending skips and
        a catch-up still to come; at most ``limit``.

        :raises InvalidScheduleError: naive datetimes, ``end`` not after ``start``, bad ``limit``.
        :raises TaskNotFoundError: no schedule has that id.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        """Fire the occurrences in [``start``, ``end``) (in the past) that have
        not fired, with their nominal times, under the overlap policy; returns
        the ids of the runs started. Paused or not, pending skips aside.

        :raises InvalidScheduleError: naive datetimes, ``end`` not after
            ``start``, or ``end`` in the future.
        :raises TaskNotFoundError: no schedule has that id.
        :raises NotSupportedError: ``capabilities.schedules`` is False.
        """
        ...

    async def cancel_task(self, task_id: str) -> bool:
        """Stop a scheduled, queued or running task. False if it had already finished.

        :raises TaskNotFoundError: no task has that id.
        """
        ...

    async def get_task_status(self, task_id: str) -> TaskInfo:
        """:raises TaskNotFoundError: no task has that id."""
        ...

    async def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        """Tasks waiting for their due time, soonest first."""
        ...

    async def list_tasks(
        self,
        task_name: str | None = None,
        *,
        states: Iterable[TaskState] | None = None,
        limit: int = 100,
    ) -> list[TaskInfo]:
        """Runs of any state (cron runs included), newest first, at most
        ``limit``. A schedule becomes a run when it fires; until then see
        ``list_scheduled_tasks``.

        :raises InvalidScheduleError: ``limit`` is not an int >= 1.
        """
        ...

    async def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        """Wait until the task reaches a final state and return it.

        :raises WaitTimeoutError: it had not finished after ``timeout`` seconds.
        :raises TaskNotFoundError: no task has that id.
        """
        ...

    async def start_worker(self) -> None:
        """Start running due tasks in this process.

        :raises NotSupportedError: the backend's workers run only in a process
            of their own (``run_worker()``, ``owlclaw-scheduler worker APP``);
            ``capabilities.start_worker`` is False.
        """
        ...

    async def stop_worker(self) -> None:
        """Stop taking new runs and wait for the running ones to finish, for a
        bounded grace (memory: ``shutdown_grace_seconds``, see docs/testing.md
        "Bounds"); what still runs then is cancelled and its run queued again.
        Nothing to stop when workers run in a process of their own
        (``capabilities.start_worker`` False)."""
        ...

    def run_worker(self) -> None:
        """Run a worker until SIGTERM or SIGINT, then drain and return."""
        ...


class _Clock(Protocol):
    def now(self) -> datetime: ...


@runtime_checkable
class VirtualClockScheduler(Protocol):
    """What a scheduler whose ``capabilities.virtual_time`` is True also has:
    a clock that moves only through ``advance(seconds)``."""

    clock: _Clock

    async def advance(self, seconds: float) -> None: ...
