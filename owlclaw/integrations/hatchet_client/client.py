"""OwlClaw's Hatchet client API as a thin adapter over the ``Scheduler`` protocol.

OwlClaw adopts owlclaw-scheduler by changing one import::

    from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig

    client = HatchetClient(HatchetConfig.from_yaml("owlclaw.yaml"))
    client.connect()

    @client.task(name="agent_scheduled_run", retries=3)
    async def agent_scheduled_run(input: dict, ctx) -> dict: ...

    run_id = await client.schedule_task("agent_scheduled_run", 300, agent_id="bot")

``hatchet.backend: memory`` (or ``OWLCLAW_SCHEDULER_BACKEND=memory``) runs the same
code in-process, which is what OwlClaw's tests want. How the synchronous
``connect()`` meets async backends, the two id spaces (``cron-<id>`` for crons)
and what pausing keeps: docs/migrating-from-owlclaw-hatchet-client.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from owlclaw.integrations.hatchet_client._bridge import (
    ClientNotConnectedError,
    NoTasksDeclaredError,
    TaskNotDeclaredError,
    drive,
    nothing,
    owlclaw_cron,
    running_loop,
    scheduled_dict,
    status_dict,
)
from owlclaw.integrations.hatchet_client._config import ENV_FALLBACKS, HatchetConfig
from owlclaw.integrations.hatchet_client._context import HatchetTaskContext, takes_input_and_ctx, wrap_handler
from owlclaw.integrations.hatchet_client._plumbing import ClientPlumbing
from owlclaw.scheduler.errors import (
    InvalidCronError,
    InvalidScheduleError,
    NotSupportedError,
    PayloadError,
    TaskDefinitionError,
    TaskNotFoundError,
)
from owlclaw.scheduler.kit import make_options
from owlclaw.scheduler.models import CronInfo
from owlclaw.scheduler.protocol import Scheduler

__all__ = [
    "ENV_FALLBACKS",
    "ClientNotConnectedError",
    "HatchetClient",
    "HatchetConfig",
    "HatchetTaskContext",
    "TaskNotDeclaredError",
]

log = logging.getLogger("owlclaw.integrations.hatchet_client")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

CRON_PREFIX = "cron-"


class HatchetClient(ClientPlumbing):
    """OwlClaw's Hatchet client, on any owlclaw-scheduler backend.

    ``scheduler`` (optional) is a ready-made scheduler to use instead of
    building one from ``config``, e.g. ``MemoryScheduler(clock=VirtualClock())``
    in a test that drives time with ``advance()``.
    """

    def __repr__(self) -> str:
        return f"HatchetClient(config={self.config!r}, connected={self._connected})"

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler the awaited calls use (after ``connect()``).

        :raises ClientNotConnectedError: not connected yet (a ``ConnectionError`` and a ``RuntimeError``).
        """
        return self._require()

    # connection

    def connect(self) -> None:
        """Check the settings and reach the engine; synchronous.

        On memory it leaves a running scheduler: its worker starts in your running
        event loop, or, called outside any loop, in a loop of its own (a daemon
        thread) that every loop's awaited calls reach.

        :raises ValueError: (``ConfigError``) no API token on the Hatchet backend, or bad settings.
        :raises ConnectionError: (``SchedulerConnectionError``) the engine cannot be
            reached, refuses the token, or does not answer within ``connect_timeout_seconds``.
        """
        if self._connected:
            return
        if self._given is not None:
            scheduler = self._given
        elif self._scheduler is not None and self._scheduler.capabilities.in_process:
            scheduler = self._scheduler  # keep the runs of an earlier connect()
        else:
            scheduler = self._build(lambda name: name not in self._paused)
        if not scheduler.capabilities.in_process:
            self._in_thread(self._with_helper(lambda name: name not in self._paused, nothing))
        self._scheduler = scheduler
        self._built_generation = -1  # the first awaited call (re)connects it in its loop
        self._connected = True
        if scheduler.capabilities.in_process:
            self._start_memory(scheduler)
        log.info("connected: %r", self.config)

    def disconnect(self) -> None:
        """Stop using the engine; synchronous. On memory the in-process worker
        stops taking runs and lets the running ones finish."""
        if not self._connected:
            return
        self._connected = False
        scheduler, loop = self._scheduler, self._loop
        if scheduler is None:
            return
        if self._home is not None:
            self._stop_home(scheduler.disconnect())
            return
        if not scheduler.capabilities.in_process:
            self._loop = None
        if loop is None:
            drive(scheduler.disconnect(), "disconnect")
        elif not loop.is_closed():
            if running_loop() is loop:
                task = loop.create_task(scheduler.disconnect())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(scheduler.disconnect(), loop).result(60)
        # a closed loop took its connections and runs with it

    # declarations

    def task(
        self,
        name: str | None = None,
        cron: str | None = None,
        retries: int = 3,
        timeout: float | None = None,
        priority: int = 1,
    ) -> Callable[[F], F]:
        """Declare ``handler(input, ctx)`` as a task; returns it unchanged.

        Declaring a name again replaces the earlier declaration (the latest wins).
        ``cron`` (UTC) is registered with the engine on connect, or at once on
        memory; 6 fields are read as croniter reads them (seconds last).
        ``priority`` is 1..3 (3 first).

        :raises TaskDefinitionError: bad name, retries, timeout or priority.
        :raises InvalidCronError: ``cron`` is not a valid expression.
        """
        return self._declare(name, cron, retries, timeout, priority, durable=False)

    def durable_task(
        self,
        name: str | None = None,
        cron: str | None = None,
        retries: int = 3,
        timeout: float | None = None,
        priority: int = 1,
    ) -> Callable[[F], F]:
        """Like ``task``; inside it ``await ctx.aio_sleep_for(timedelta)`` is a durable sleep."""
        return self._declare(name, cron, retries, timeout, priority, durable=True)

    def _declare(
        self,
        name: str | None,
        cron: str | None,
        retries: int,
        timeout: float | None,
        priority: int,
        *,
        durable: bool,
    ) -> Callable[[F], F]:
        def decorate(func: F) -> F:
            task_name = name if name is not None else getattr(func, "__name__", "")
            if isinstance(priority, int) and not isinstance(priority, bool) and priority > 3:
                raise TaskDefinitionError(
                    f"task {task_name!r}: priority must be 1, 2 or 3 (the Hatchet engine's range, "
                    f"3 runs first), got {priority!r}; map a larger OwlClaw priority onto 1-3"
                )
            options = make_options(
                wrap_handler(func, durable=durable),
                task_name,
                cron=owlclaw_cron(cron) if cron is not None else None,
                retries=retries,
                timeout=timeout,
                priority=priority,
                durable=durable,
            )
            if not takes_input_and_ctx(func):
                log.warning(
                    "task %r: %s cannot be called with (input, ctx), which is how Hatchet calls "
                    "every task function, so each of its runs will fail with TypeError; declare it "
                    "as `async def %s(input, ctx)`",
                    options.name,
                    getattr(func, "__qualname__", func),
                    getattr(func, "__name__", "handler"),
                )
            previous = self._tasks.get(options.name)
            self._tasks[options.name] = options  # as hatchet-sdk: the latest declaration wins
            self._generation += 1
            if previous is not None:
                log.info("task %r declared again: this declaration replaces the earlier one", options.name)
            scheduler = self._scheduler
            if scheduler is not None and scheduler.capabilities.in_process:
                in_process = scheduler

                async def add() -> None:  # where the scheduler lives: its worker reads its tasks
                    self._add_declared(in_process)

                self._run_here(add, "declaring a task")
            if scheduler is not None and previous is not None and previous.cron != options.cron:
                self._swap_declared_cron(scheduler, previous, options)
            if scheduler is not None and scheduler.capabilities.in_process and self._connected:
                self._run_here(scheduler.connect, "connect")  # registers a cron declared now
            return func

        return decorate

    # running and scheduling

    async def run_task_now(self, task_name: str, /, **kwargs: Any) -> str:
        """Run now with ``kwargs`` as the input; returns the run id.

        :raises TaskNotDeclaredError: no task of that name (a ``LookupError`` and a ``ValueError``).
        :raises PayloadError: a value is not JSON.
        """
        self._check_declared(task_name)
        return await self._call(lambda s: s.run_task(task_name, kwargs))

    async def schedule_task(self, task_name: str, /, delay_seconds: float, **kwargs: Any) -> str:
        """Run once after ``delay_seconds`` with ``kwargs`` as the input; returns its id,
        which status and cancel accept before and after it fires.

        :raises InvalidScheduleError: ``delay_seconds`` is not > 0.
        :raises TaskNotDeclaredError: no task of that name (a ``LookupError`` and a ``ValueError``).
        """
        number = isinstance(delay_seconds, int | float) and not isinstance(delay_seconds, bool)
        if number and delay_seconds <= 0:
            raise InvalidScheduleError(f"delay_seconds must be positive (> 0), got {delay_seconds!r}")
        self._check_declared(task_name)
        return await self._call(lambda s: s.schedule_task(task_name, kwargs, delay_seconds=delay_seconds))

    async def schedule_cron(
        self,
        workflow_name: str,
        cron_name: str,
        expression: str,
        input_data: Mapping[str, Any] | None,
        *,
        additional_metadata: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
    ) -> str:
        """Run ``workflow_name`` on a cron with ``input_data``, its wall times read
        in ``timezone`` (an IANA name; UTC by default); returns ``cron-<id>``.

        ``cron_name`` and ``additional_metadata`` are checked and accepted so call
        sites stay unchanged, but not stored: the engine's cron gets a generated
        name and no metadata. Keep the returned id to cancel it.

        :raises InvalidCronError: bad expression or empty ``cron_name``.
        :raises InvalidScheduleError: unknown ``timezone``.
        :raises NotSupportedError: a zone other than UTC on a backend without
            schedules (``capabilities.schedules``).
        :raises TaskNotDeclaredError: no task of that name (a ``LookupError`` and a ``ValueError``).
        """
        if not isinstance(cron_name, str) or not cron_name.strip():
            raise InvalidCronError(f"cron_name must be a non-empty string, got {cron_name!r}")
        if additional_metadata is not None and not isinstance(additional_metadata, Mapping):
            raise PayloadError(
                f"additional_metadata must be a dict or None, got {type(additional_metadata).__name__}"
            )
        self._require()
        self._check_declared(workflow_name)
        cron = owlclaw_cron(expression)
        return CRON_PREFIX + await self._call(
            lambda s: s.add_cron(workflow_name, cron, input_data, timezone=timezone)
        )

    # cancel, status, listings

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a scheduled, queued or running task. False if it had finished,
        or the id is unknown or a cron's, or the client is not connected."""
        if not self._connected:
            return False
        if not isinstance(task_id, str) or not task_id or task_id.startswith(CRON_PREFIX):
            return False
        try:
            return await self._call(lambda s: s.cancel_task(task_id))
        except TaskNotFoundError:
            return False

    async def cancel_cron(self, cron_id: str) -> bool:
        """Stop a cron from ``schedule_cron``. False if the id is unknown or a task's,
        or the client is not connected."""
        if not self._connected:
            return False
        if not isinstance(cron_id, str) or not cron_id.startswith(CRON_PREFIX):
            return False
        backend_id = cron_id[len(CRON_PREFIX) :]
        backend_id = self._cron_alias.pop(backend_id, backend_id)
        for crons in self._paused.values():
            for cron in crons:
                if cron.id == backend_id:  # paused: it is only in this client
                    crons.remove(cron)
                    return True
        try:
            await self._call(lambda s: s.remove_cron(backend_id))
        except TaskNotFoundError:
            return False
        return True

    async def get_task_status(self, task_id: str) -> dict[str, Any]:
        """``{"id", "status", "result", "error", "workflow", "scheduled_at",
        "started_at", "finished_at", "attempts"}``; ``status`` is one of scheduled,
        queued, running, completed, failed, cancelled. Times are aware UTC datetimes.

        :raises TaskNotFoundError: no task has that id (crons have no status).
        """
        if isinstance(task_id, str) and task_id.startswith(CRON_PREFIX):
            raise TaskNotFoundError(
                f"{task_id!r} is a cron id (from schedule_cron): crons have no status; cancel_cron() stops it"
            )
        return status_dict(await self._call(lambda s: s.get_task_status(task_id)))

    async def list_scheduled_tasks(self, **filters: Any) -> list[dict[str, Any]]:
        """Schedules waiting for their due time, soonest first: ``{"id", "workflow",
        "scheduled_at" (the due time), "input"}``. ``filters`` match input fields,
        e.g. ``agent_id="bot-1"``. ``[]`` when the client is not connected."""
        if not self._connected:
            return []
        found = [scheduled_dict(info) for info in await self._call(lambda s: s.list_scheduled_tasks())]
        return [s for s in found if all(k in s["input"] and s["input"][k] == v for k, v in filters.items())]

    # pausing crons

    def pause_task(self, name: str) -> bool:
        """Pause task ``name``'s crons; synchronous. True if it had crons to pause
        (False when already paused).

        On a backend that keeps schedules (``capabilities.schedules``) this is a
        real ``pause_schedule``: the crons stay listed, paused, for every client,
        and what falls while paused is skipped. Elsewhere the crons are removed
        from the engine and remembered in this client for ``resume_task``.

        :raises TaskNotDeclaredError: no task of that name (a ``LookupError`` and a ``ValueError``).
        """
        self._require()
        self._check_declared(name)
        if name in self._paused:
            return False
        if self._require().capabilities.schedules:
            return self._sync(lambda s: _pause_all(s, name, pause=True), keep_cron=None)

        async def pause(scheduler: Scheduler) -> list[CronInfo]:
            # crons only: an every= schedule has no expression to add back
            crons = [c for c in await scheduler.list_crons(name) if c.expression is not None]
            for cron in crons:
                await scheduler.remove_cron(cron.id)
            return crons

        crons = self._sync(pause, keep_cron=None)
        self._paused[name] = crons
        self._generation += 1  # rebuild: the live scheduler must not re-declare its cron
        return bool(crons)

    def resume_task(self, name: str) -> bool:
        """Resume the crons ``pause_task`` paused (or add back those it removed);
        synchronous. False if none was paused."""
        self._require()
        self._check_declared(name)
        if name not in self._paused and self._require().capabilities.schedules:
            return self._sync(lambda s: _pause_all(s, name, pause=False), keep_cron=None)
        crons = self._paused.pop(name, None)
        self._generation += 1
        if crons is None:
            return False
        declared = self._tasks[name].cron
        remote = not self._require().capabilities.in_process

        async def resume(scheduler: Scheduler) -> dict[str, str]:
            new_ids: dict[str, str] = {}
            redeclared = False
            for cron in crons:
                if remote and not redeclared and cron.expression == declared and cron.payload == {}:
                    redeclared = True  # the helper's connect() registered it again
                    continue
                assert cron.expression is not None  # pause() kept crons only
                new_ids[cron.id] = await scheduler.add_cron(
                    name, cron.expression, cron.payload, timezone=cron.timezone
                )
            return new_ids

        for old, new in self._sync(resume, keep_cron=name).items():
            self._cron_alias[old] = new
        return bool(crons)

    # workers

    def start_worker(self) -> None:
        """Run a worker for the declared tasks until SIGTERM/SIGINT; blocks.

        On Hatchet it registers the tasks and declared crons, then runs the
        SDK's worker (``max_concurrent_tasks`` slots), which needs the main
        thread. On memory it runs the in-process worker in a loop of its own;
        when your event loop already uses this client, that loop runs the tasks
        instead, and this raises ``NotSupportedError``.
        """
        scheduler = self._require()
        if not self._tasks:
            raise NoTasksDeclaredError(
                "No tasks registered: declare at least one with @client.task(...) before start_worker()"
            )
        if scheduler.capabilities.in_process:
            if self._home is not None:  # connect() left it running in a thread: serve here instead
                self._stop_home(scheduler.stop_worker())
            elif self._loop is not None:
                if not self._loop.is_closed():
                    raise NotSupportedError(
                        "the memory backend already runs this client's tasks in your event loop "
                        "(started by the first awaited call); start_worker() is for a worker process"
                    )
                scheduler = self._renew_memory()
            scheduler.run_worker()
            return
        self._in_thread(self._with_helper(lambda name: name not in self._paused, nothing))
        self._build(lambda name: False).run_worker()


async def _pause_all(scheduler: Scheduler, name: str, *, pause: bool) -> bool:
    """Pause (or resume) every schedule of task ``name``; whether any changed."""
    changed = False
    for info in await scheduler.list_schedules(name):
        if info.paused != pause:
            if pause:
                await scheduler.pause_schedule(info.id, f"pause_task({name!r}) through the OwlClaw client")
            else:
                await scheduler.resume_schedule(info.id)
            changed = True
    return changed
