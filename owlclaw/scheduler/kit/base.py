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
from datetime import datetime
from inspect import signature
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, Unpack

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import normalize_cron
from owlclaw.scheduler.errors import (
    SchedulerConnectionError,
    TaskDefinitionError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.kit.declare import TaskArgs, make_options
from owlclaw.scheduler.kit.payloads import check_payload, resolve_due_time, run_priority
from owlclaw.scheduler.kit.schedule_calls import MAX_NOTE_CHARS, ScheduleCalls
from owlclaw.scheduler.kit.signals import serve_until_signal
from owlclaw.scheduler.kit.sync import check_not_in_sync_task
from owlclaw.scheduler.limits import check_limit, check_wait_seconds
from owlclaw.scheduler.models import CronInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability import current_metadata, traced_call
from owlclaw.scheduler.protocol import Capabilities
from owlclaw.scheduler.schedules import (
    Overlap,
    ScheduleSpec,
)
from owlclaw.scheduler.schedules.spec import check_zone

__all__ = ["MAX_NOTE_CHARS", "NOT_CONNECTED", "BaseScheduler"]


F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound="BaseScheduler")

NOT_CONNECTED = (
    "the scheduler is not connected: use `async with scheduler:` or `await scheduler.connect()` first"
)


class BaseScheduler(ScheduleCalls):
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
