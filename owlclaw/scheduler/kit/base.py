"""``BaseScheduler``: the public methods of a backend, written once.

Each public method does what every backend must do the same way (the
connected check, the task look-up, the due time, the priority, the payload's
JSON check, a span for the call) and then calls one hook, a method whose name
starts with ``_`` that the backend implements against its engine::

    run_task / schedule_task  ->  _submit(options, payload, due=, priority=, metadata=)
    add_cron                  ->  _add_cron(options, expression, payload)    (UTC)
    add_schedule, add_cron    ->  _add_schedule(options, spec, payload)      (other zones)
    remove_cron/_schedule     ->  _remove_schedule(id), by default _remove_cron(id)
    list_crons/_schedules     ->  _list_schedules(task_name), by default _list_crons(task_name)
    get_schedule              ->  _get_schedule(id), by default from _list_schedules
    update_schedule           ->  _update_schedule(id, changes)
    pause/resume/skip_schedule, preview_schedule, backfill_schedule
                              ->  _pause_schedule, _resume_schedule, _skip_schedule,
                                  _preview_schedule, _backfill_schedule
    cancel_task               ->  _cancel(task_id)
    get_task_status           ->  _status(task_id)
    list_scheduled_tasks      ->  _list_scheduled(task_name)
    list_tasks                ->  _list_runs(task_name, states, limit)
    wait_for_task             ->  _wait(task_id, timeout)

A backend also implements ``connect``, ``disconnect``, ``start_worker`` and
``stop_worker``, and may override ``_check_connected``, ``_now``,
``_check_task`` and ``_task_added``. A backend may still override a public
method itself; the base then stays out of that call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from inspect import signature
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, Unpack

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import normalize_cron
from owlclaw.scheduler.errors import (
    InvalidScheduleError,
    NotSupportedError,
    SchedulerConnectionError,
    TaskDefinitionError,
    TaskNotFoundError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.kit.declare import TaskArgs, make_options
from owlclaw.scheduler.kit.payloads import check_payload, resolve_due_time, run_priority
from owlclaw.scheduler.kit.signals import serve_until_signal
from owlclaw.scheduler.kit.sync import check_not_in_sync_task
from owlclaw.scheduler.limits import check_limit, check_wait_seconds
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability import current_metadata, traced_call
from owlclaw.scheduler.protocol import Capabilities
from owlclaw.scheduler.schedules import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_COALESCE,
    DEFAULT_OVERLAP,
    Overlap,
    ScheduleSpec,
)
from owlclaw.scheduler.schedules.occurrences import utc
from owlclaw.scheduler.schedules.spec import check_zone

__all__ = ["MAX_NOTE_CHARS", "NOT_CONNECTED", "BaseScheduler"]

MAX_NOTE_CHARS = 1000  # a pause note says who and why, not a log
_UPDATABLE = frozenset("payload cron every timezone start end jitter overlap catchup_window coalesce".split())

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound="BaseScheduler")

NOT_CONNECTED = (
    "the scheduler is not connected: use `async with scheduler:` or `await scheduler.connect()` first"
)


class BaseScheduler:
    """Task registry, input checks and the public methods, over a backend's hooks.

        ``BaseScheduler()`` itself only registers and checks declarations; every
        call that needs an engine raises ``NotImplementedError``. A backend whose
    ``capabilities.schedules`` is False leaves the schedule hooks alone: they
    raise ``NotSupportedError`` naming the method and the backend.
    """

    backend_name = "base"

    def __init__(self) -> None:
        self._tasks: dict[str, TaskOptions] = {}
        #: Set by the backend's ``connect``/``disconnect``; read by ``_check_connected``.
        self._connected = False

    @property
    def capabilities(self) -> Capabilities:
        """What this backend can do beyond the protocol: nothing unless it says so."""
        return Capabilities()

    @property
    def tasks(self) -> Mapping[str, TaskOptions]:
        return MappingProxyType(self._tasks)

    # declarations

    def task(self, name: str | None = None, **declared: Unpack[TaskArgs]) -> Callable[[F], F]:
        """Register ``func(payload, ctx)`` as a task; see ``Scheduler.task``."""
        try:  # a misspelled argument fails here, not when the decorator is applied
            signature(make_options).bind(None, name, **declared)
        except TypeError as exc:
            raise TypeError(f"task() {exc}") from None

        def decorate(func: F) -> F:
            self.add_tasks([make_options(func, name, **declared)])
            return func

        return decorate

    def add_tasks(self, tasks: Iterable[TaskOptions], *, replace: bool = False) -> None:
        """Register declared tasks; ``replace=True`` lets a declaration replace an
        earlier one of the same name (the latest wins), as hatchet-sdk does."""
        for options in tasks:
            if options.name in self._tasks and not replace:
                raise TaskDefinitionError(
                    f"a task named {options.name!r} is already registered; pick another name"
                )
            self._check_task(options)
            if options.timezone != "UTC" and not self.capabilities.schedules:
                raise TaskDefinitionError(
                    f"task {options.name!r}: cron in timezone={options.timezone!r}, but the "
                    f"{self.backend_name} backend's crons are UTC only (capabilities.schedules is "
                    "False); write the cron in UTC, or use a backend that keeps schedules"
                )
            self._tasks[options.name] = options
            self._task_added(options)

    def _check_task(self, options: TaskOptions) -> None:
        """Hook: raise TaskDefinitionError for what this backend cannot run."""

    def _task_added(self, options: TaskOptions) -> None:
        """Hook for backends that must know tasks as they are declared."""

    def _options(self, task_name: str) -> TaskOptions:
        try:
            return self._tasks[task_name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none yet"
            raise TaskNotRegisteredError(
                f"no task named {task_name!r} is registered (registered: {known}); "
                "declare it with @scheduler.task"
            ) from None

    # the common opening

    def _enter(self, operation: str) -> None:
        """The checks every public method starts with: not awaited from a sync
        task's own event loop (``kit.sync``), then ``_check_connected``."""
        check_not_in_sync_task(self)
        self._check_connected(operation)

    def _check_connected(self, operation: str) -> None:
        """Hook: raise ``SchedulerConnectionError`` when ``operation`` (the
        public method's name) cannot reach the engine now."""
        if not self._connected:
            raise SchedulerConnectionError(NOT_CONNECTED)

    def _now(self) -> datetime:
        """Hook: the current time, timezone-aware UTC (``delay_seconds`` counts from it)."""
        return utc_now()

    # scheduling

    @traced_call("run_task")
    async def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        self._enter("run_task")
        options = self._options(task_name)
        prio = run_priority(options, priority)
        data = check_payload(payload)
        return await self._submit(options, data, due=None, priority=prio, metadata=current_metadata())

    @traced_call("schedule_task")
    async def schedule_task(
        self,
        task_name: str,
        payload: Any = None,
        *,
        delay_seconds: float | None = None,
        at: datetime | None = None,
        priority: int | None = None,
    ) -> str:
        self._enter("schedule_task")
        due = resolve_due_time(self._now(), delay_seconds, at)
        options = self._options(task_name)
        prio = run_priority(options, priority)
        data = check_payload(payload)
        return await self._submit(options, data, due=due, priority=prio, metadata=current_metadata())

    @traced_call("add_cron")
    async def add_cron(
        self, task_name: str, expression: str, payload: Any = None, *, timezone: str = "UTC"
    ) -> str:
        self._enter("add_cron")
        expression = normalize_cron(expression)
        options = self._options(task_name)
        data = check_payload(payload)
        if timezone == "UTC":
            return await self._add_cron(options, expression, data)
        check_zone(timezone)  # a bad zone says so before "not supported"
        if not self.capabilities.schedules:
            raise self._unsupported(
                f"add_cron(timezone={timezone!r})", "its crons are UTC only: write the expression in UTC"
            )
        spec = ScheduleSpec(cron=expression, timezone=timezone, overlap=Overlap.ALLOW_ALL)
        return await self._add_schedule(options, spec, data)

    async def remove_cron(self, cron_id: str) -> None:
        self._enter("remove_cron")
        await self._remove_schedule(cron_id)

    async def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        self._enter("list_crons")
        return await self._list_schedules(task_name)

    # schedules

    @traced_call("add_schedule")
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
        self._enter("add_schedule")
        spec = ScheduleSpec(
            cron=cron,
            every=every,
            timezone=timezone,
            start=start,
            end=end,
            jitter=jitter,
            overlap=overlap,  # type: ignore[arg-type]  # a str is checked by ScheduleSpec
            catchup_window=catchup_window,  # type: ignore[arg-type]  # seconds too, converted there
            coalesce=coalesce,
        )
        options = self._options(task_name)
        data = check_payload(payload)
        if not self.capabilities.schedules:
            raise self._unsupported("add_schedule()", "use add_cron with a UTC expression")
        return await self._add_schedule(options, spec, data)

    async def list_schedules(self, task_name: str | None = None) -> list[ScheduleInfo]:
        self._enter("list_schedules")
        return await self._list_schedules(task_name)

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        self._enter("get_schedule")
        return await self._get_schedule(schedule_id)

    async def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        self._enter("update_schedule")
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown or not changes:
            raise TypeError(
                f"update_schedule() takes {', '.join(sorted(_UPDATABLE))}; "
                + (f"got {', '.join(unknown)}" if unknown else "got nothing to change")
            )
        if "payload" in changes:
            changes["payload"] = check_payload(changes["payload"])
        self._need_schedules("update_schedule()")
        await self._update_schedule(schedule_id, changes)

    async def remove_schedule(self, schedule_id: str) -> None:
        self._enter("remove_schedule")
        await self._remove_schedule(schedule_id)

    async def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        self._enter("pause_schedule")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
            raise InvalidScheduleError(
                f"note must be a string of at most {MAX_NOTE_CHARS} characters saying who paused and "
                f"why (e.g. 'ops: provider outage'), got {_short(note)}"
            )
        self._need_schedules("pause_schedule()")
        await self._pause_schedule(schedule_id, note)

    async def resume_schedule(self, schedule_id: str) -> None:
        self._enter("resume_schedule")
        self._need_schedules("resume_schedule()")
        await self._resume_schedule(schedule_id)

    async def skip_schedule(self, schedule_id: str, count: int = 1) -> None:
        self._enter("skip_schedule")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidScheduleError(
                f"count must be an int >= 1 (occurrences to skip), got {count!r}; "
                "to undo skips, resume_schedule does not help: remove and add the schedule"
            )
        self._need_schedules("skip_schedule()")
        await self._skip_schedule(schedule_id, count)

    async def preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> list[datetime]:
        self._enter("preview_schedule")
        start, end = _window("preview_schedule", start, end)
        limit = check_limit(limit)
        self._need_schedules("preview_schedule()")
        return await self._preview_schedule(schedule_id, start, end, limit)

    @traced_call("backfill_schedule")
    async def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        self._enter("backfill_schedule")
        start, end = _window("backfill_schedule", start, end)
        now = self._now()
        if end > now:
            raise InvalidScheduleError(
                f"backfill_schedule end {end.isoformat()} is in the future (now {now.isoformat()}): "
                "a backfill fires past occurrences; give an end up to now, and let the "
                "schedule fire the later ones itself"
            )
        self._need_schedules("backfill_schedule()")
        return await self._backfill_schedule(schedule_id, start, end)

    def _need_schedules(self, method: str) -> None:
        if not self.capabilities.schedules:
            raise self._unsupported(method, "")

    def _unsupported(self, method: str, hint: str) -> NotSupportedError:
        return NotSupportedError(
            f"{method} is not supported by the {self.backend_name} backend: it keeps no schedules "
            f"(capabilities.schedules is False)" + (f"; {hint}" if hint else "")
        )

    @traced_call("cancel_task")
    async def cancel_task(self, task_id: str) -> bool:
        self._enter("cancel_task")
        return await self._cancel(task_id)

    async def get_task_status(self, task_id: str) -> TaskInfo:
        self._enter("get_task_status")
        return await self._status(task_id)

    async def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        self._enter("list_scheduled_tasks")
        return await self._list_scheduled(task_name)

    async def list_tasks(
        self,
        task_name: str | None = None,
        *,
        states: Iterable[TaskState] | None = None,
        limit: int = 100,
    ) -> list[TaskInfo]:
        self._enter("list_tasks")
        wanted = frozenset(states) if states is not None else None
        return await self._list_runs(task_name, states=wanted, limit=check_limit(limit))

    async def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        self._enter("wait_for_task")
        return await self._wait(task_id, check_wait_seconds("wait_for_task(timeout=...)", timeout))

    # hooks a backend implements

    async def _submit(
        self,
        options: TaskOptions,
        payload: dict[str, Any],
        *,
        due: datetime | None,
        priority: int,
        metadata: dict[str, str],
    ) -> str:
        """Create a run of ``options`` and return its id: queued now when
        ``due`` is None, else a schedule due then (UTC). ``payload`` is checked
        JSON, ``priority`` 1-3; ``metadata`` is the trace context to keep with
        the run and pass to ``run_attempt(trace=...)``."""
        raise NotImplementedError

    async def _add_cron(self, options: TaskOptions, expression: str, payload: dict[str, Any]) -> str:
        """Create a cron trigger (``expression`` is normalized) and return its id."""
        raise NotImplementedError

    async def _remove_cron(self, cron_id: str) -> None:
        """Delete a cron trigger; ``TaskNotFoundError`` for an unknown id."""
        raise NotImplementedError

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        """The cron triggers, of ``task_name`` only if given."""
        raise NotImplementedError

    async def _add_schedule(self, options: TaskOptions, spec: ScheduleSpec, payload: dict[str, Any]) -> str:
        """Create a schedule (``spec`` is validated) and return its id."""
        raise self._unsupported("add_schedule()", "")

    async def _list_schedules(self, task_name: str | None) -> list[ScheduleInfo]:
        """The schedules, of ``task_name`` only if given: by default the crons."""
        return await self._list_crons(task_name)

    async def _get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """One schedule; ``TaskNotFoundError`` for an unknown id."""
        for info in await self._list_schedules(None):
            if info.id == schedule_id:
                return info
        raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")

    async def _remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; by default a cron (``_remove_cron``)."""
        await self._remove_cron(schedule_id)

    async def _update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (checked names; ``payload`` checked JSON)."""
        raise self._unsupported("update_schedule()", "")

    async def _pause_schedule(self, schedule_id: str, note: str | None) -> None:
        raise self._unsupported("pause_schedule()", "")

    async def _resume_schedule(self, schedule_id: str) -> None:
        raise self._unsupported("resume_schedule()", "")

    async def _skip_schedule(self, schedule_id: str, count: int) -> None:
        raise self._unsupported("skip_schedule()", "")

    async def _preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, limit: int
    ) -> list[datetime]:
        raise self._unsupported("preview_schedule()", "")

    async def _backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        raise self._unsupported("backfill_schedule()", "")

    async def _cancel(self, task_id: str) -> bool:
        """Cancel a scheduled, queued or running run; False if it had finished."""
        raise NotImplementedError

    async def _status(self, task_id: str) -> TaskInfo:
        """A run's (or pending schedule's) state; ``TaskNotFoundError`` for an unknown id."""
        raise NotImplementedError

    async def _list_scheduled(self, task_name: str | None) -> list[TaskInfo]:
        """Schedules not yet due, soonest first."""
        raise NotImplementedError

    async def _list_runs(
        self, task_name: str | None, *, states: frozenset[TaskState] | None, limit: int
    ) -> list[TaskInfo]:
        """Runs (not pending schedules), newest first, at most ``limit``."""
        raise NotImplementedError

    async def _wait(self, task_id: str, timeout: float) -> TaskInfo:
        """A run's info once final; ``WaitTimeoutError`` after ``timeout`` seconds."""
        raise NotImplementedError

    # connection and worker

    async def connect(self) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def start_worker(self) -> None:
        raise NotImplementedError

    async def stop_worker(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: B) -> B:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def run_worker(self) -> None:
        """Serve in this process until SIGTERM/SIGINT (``serve_until_signal``)."""
        asyncio.run(serve_until_signal(self))


def _window(method: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = utc("start", start), utc("end", end)
    if end <= start:
        raise InvalidScheduleError(
            f"{method}: end {end.isoformat()} is not after start {start.isoformat()}; give start < end"
        )
    return start, end


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
