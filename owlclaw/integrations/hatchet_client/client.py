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
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from owlclaw.integrations.hatchet_client._bridge import (
    ClientNotConnectedError,
    Home,
    NoTasksDeclaredError,
    TaskNotDeclaredError,
    drive,
    hatchet_settings,
    in_thread,
    nothing,
    owlclaw_cron,
    running_loop,
    scheduled_dict,
    status_dict,
)
from owlclaw.integrations.hatchet_client._config import ENV_FALLBACKS, HatchetConfig
from owlclaw.integrations.hatchet_client._context import HatchetTaskContext, takes_input_and_ctx, wrap_handler
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import (
    ConfigError,
    InvalidCronError,
    InvalidScheduleError,
    NotSupportedError,
    PayloadError,
    TaskDefinitionError,
    TaskNotFoundError,
)
from owlclaw.scheduler.kit import BaseScheduler, make_options
from owlclaw.scheduler.models import CronInfo, TaskOptions
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import create_scheduler

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
_SOURCE = "hatchet: (owlclaw.integrations.hatchet_client)"


class HatchetClient:
    """OwlClaw's Hatchet client, on any owlclaw-scheduler backend.

    ``scheduler`` (optional) is a ready-made scheduler to use instead of
    building one from ``config``, e.g. ``MemoryScheduler(clock=VirtualClock())``
    in a test that drives time with ``advance()``.
    """

    def __init__(self, config: HatchetConfig | None = None, *, scheduler: Scheduler | None = None) -> None:
        self.config = config or HatchetConfig()
        self._tasks: dict[str, TaskOptions] = {}  # the latest declaration of each name
        self._generation = 0  # bumped by every declaration
        self._given = scheduler
        self._scheduler: Scheduler | None = scheduler
        self._built_generation = -1
        self._connected = False
        # where self._scheduler is connected; memory keeps it across disconnect (its runs live there)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._paused: dict[str, list[CronInfo]] = {}
        self._cron_alias: dict[str, str] = {}  # backend cron id before a resume -> after
        self._closing: set[asyncio.Task[None]] = set()
        self._home: Home | None = None  # memory connected outside any event loop lives there
        self._boot: asyncio.Task[None] | None = None  # memory's worker starting in your loop

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

    def _start_memory(self, scheduler: Scheduler) -> None:
        """Leave memory running: its worker starts in your running event loop, or,
        called outside any loop, in a loop of its own (a daemon thread). On a
        virtual clock outside any loop, the first awaited call starts it, in its loop."""
        self._add_declared(scheduler)
        loop = running_loop()
        if loop is not None and (self._loop is None or self._loop is loop or self._loop.is_closed()):
            if self._loop is not None and self._loop.is_closed():
                scheduler = self._renew_memory() if self._given is None else scheduler
                if self._given is not None:
                    return  # the first awaited call explains what to do
            drive(scheduler.connect(), "connect")
            closing = list(self._closing)

            async def boot() -> None:
                if closing:  # a disconnect() still stopping the worker
                    await asyncio.gather(*closing, return_exceptions=True)
                await scheduler.connect()
                await scheduler.start_worker()

            self._boot = loop.create_task(boot())
            self._loop, self._built_generation = loop, self._generation
        elif loop is None and self._loop is None and not scheduler.capabilities.virtual_time:
            home = Home()

            async def start() -> None:
                await scheduler.connect()
                await scheduler.start_worker()

            try:
                home.call(start())
            except BaseException:
                home.close()
                raise
            self._home, self._loop, self._built_generation = home, home.loop, self._generation
        else:
            drive(scheduler.connect(), "connect")

    def _run_here(self, make: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        """Run a memory coroutine where the scheduler lives (its own thread, or inline)."""
        home = self._home
        if home is not None and running_loop() is not home.loop:
            return home.call(make())
        return drive(make(), what)

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

    def _stop_home(self, last: Coroutine[Any, Any, None]) -> None:
        """Run ``last`` (stopping the worker) in the home loop, then end that loop;
        the memory scheduler keeps its runs for the next connect()."""
        home, self._home, self._loop = self._home, None, None
        assert home is not None
        if running_loop() is home.loop:  # from one of its own tasks: it cannot wait for itself
            home.loop.create_task(last).add_done_callback(lambda _: home.loop.stop())
            return
        try:
            home.call(last)
        finally:
            home.close()

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

    def _swap_declared_cron(self, scheduler: Scheduler, previous: TaskOptions, options: TaskOptions) -> None:
        """Replace the declared cron a re-declaration changed, or remove the one it
        dropped. (On Hatchet, connecting a scheduler replaces a changed one; a
        dropped one is removed here.)"""
        name = options.name
        paused = self._paused.get(name)
        if paused is not None:  # only this client holds its crons: edit them there
            for i, cron in enumerate(paused):
                if cron.expression == previous.cron and cron.payload == {}:
                    if options.cron is None:
                        del paused[i]
                    else:
                        paused[i] = dataclasses.replace(cron, expression=options.cron)
                    break
            return
        if not self._connected:
            return  # connect() registers the current one
        if not scheduler.capabilities.in_process:
            if options.cron is None:

                async def drop(helper: Scheduler) -> None:
                    for cron in await helper.list_crons(name):
                        if cron.expression == previous.cron and cron.payload == {}:
                            await helper.remove_cron(cron.id)

                self._in_thread(self._with_helper(lambda _: False, drop))
            return

        async def swap() -> None:
            for cron in await scheduler.list_crons(name):
                if cron.expression == previous.cron and cron.payload == {}:
                    await scheduler.remove_cron(cron.id)
                    if options.cron is not None:
                        await scheduler.add_cron(name, options.cron, {})
                    return

        self._run_here(swap, "re-declaring a task")

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
    ) -> str:
        """Run ``workflow_name`` on a UTC cron with ``input_data``; returns ``cron-<id>``.

        ``cron_name`` and ``additional_metadata`` are checked and accepted so call
        sites stay unchanged, but not stored: the engine's cron gets a generated
        name and no metadata. Keep the returned id to cancel it.

        :raises InvalidCronError: bad expression or empty ``cron_name``.
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
        return CRON_PREFIX + await self._call(lambda s: s.add_cron(workflow_name, cron, input_data))

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
        """Remove task ``name``'s crons from the engine, remembered here for
        ``resume_task``; synchronous. True if it had crons to pause.

        :raises TaskNotDeclaredError: no task of that name (a ``LookupError`` and a ``ValueError``).
        """
        self._require()
        self._check_declared(name)
        if name in self._paused:
            return False

        async def pause(scheduler: Scheduler) -> list[CronInfo]:
            crons = await scheduler.list_crons(name)
            for cron in crons:
                await scheduler.remove_cron(cron.id)
            return crons

        crons = self._sync(pause, keep_cron=None)
        self._paused[name] = crons
        self._generation += 1  # rebuild: the live scheduler must not re-declare its cron
        return bool(crons)

    def resume_task(self, name: str) -> bool:
        """Add back the crons ``pause_task`` removed; synchronous. False if not paused here."""
        self._require()
        self._check_declared(name)
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
                new_ids[cron.id] = await scheduler.add_cron(name, cron.expression, cron.payload)
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

    # internals

    def _require(self) -> Scheduler:
        if not self._connected or self._scheduler is None:
            raise ClientNotConnectedError("Not connected: call client.connect() first")
        return self._scheduler

    def _check_declared(self, name: str) -> None:
        if name not in self._tasks:
            known = ", ".join(sorted(self._tasks)) or "none yet"
            raise TaskNotDeclaredError(
                f"Task {name!r} not registered: declare it with @client.task(name={name!r}) "
                f"(declared: {known})"
            )

    def _build(self, keep_cron: Callable[[str], bool]) -> Scheduler:
        """A scheduler for ``self.config`` with the declared tasks; a declared cron
        only where ``keep_cron(name)`` (connecting a scheduler registers its crons)."""
        cfg = self.config
        if cfg.backend == "memory":
            settings: dict[str, Any] = {"slots": cfg.max_concurrent_tasks}
        else:
            settings = hatchet_settings(cfg)
        try:
            scheduler = create_scheduler(
                SchedulerConfig.from_mapping({"backend": cfg.backend, cfg.backend: settings}, source=_SOURCE)
            )
        except ConfigError as exc:
            raise ConfigError(
                f"{exc} (in owlclaw.yaml's hatchet: section, tls_strategy is grpc_tls_strategy, "
                "host_port is grpc_host_port, and HATCHET_CLIENT_* are HATCHET_*)"
            ) from None
        self._add_declared(scheduler, keep_cron)
        return scheduler

    def _add_declared(self, scheduler: Scheduler, keep_cron: Callable[[str], bool] = lambda _: True) -> None:
        """Give ``scheduler`` the declared tasks it lacks, and the latest
        declaration of those declared again since."""
        new: list[TaskOptions] = []
        changed: list[TaskOptions] = []
        for o in self._tasks.values():
            registered = scheduler.tasks.get(o.name)
            options = o if keep_cron(o.name) else dataclasses.replace(o, cron=None)
            if registered is None:
                new.append(options)
            elif registered.func is not o.func:
                changed.append(options)
        scheduler.add_tasks(new)
        if changed:
            if not isinstance(scheduler, BaseScheduler):
                raise NotSupportedError(
                    f"{type(scheduler).__name__} cannot replace a declared task "
                    f"({', '.join(o.name for o in changed)}); give the client a scheduler built on "
                    "owlclaw.scheduler.kit.BaseScheduler"
                )
            scheduler.add_tasks(changed, replace=True)

    def _with_helper(
        self, keep_cron: Callable[[str], bool], work: Callable[[Scheduler], Awaitable[T]]
    ) -> Callable[[], Coroutine[Any, Any, T]]:
        """A coroutine factory: connect a fresh scheduler, do ``work``, disconnect."""
        scheduler = self._build(keep_cron)

        async def run() -> T:
            await scheduler.connect()
            try:
                return await work(scheduler)
            finally:
                await scheduler.disconnect()

        return run

    def _sync(self, work: Callable[[Scheduler], Awaitable[T]], *, keep_cron: str | None) -> T:
        scheduler = self._require()
        if scheduler.capabilities.in_process:

            async def inline() -> T:
                self._add_declared(scheduler)
                await scheduler.connect()
                return await work(scheduler)

            return self._run_here(inline, "pause_task/resume_task")
        return self._in_thread(self._with_helper(lambda name: name == keep_cron, work))

    def _in_thread(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        # every step of a connect has its own timeout; this bounds them all
        limit = self.config.connect_timeout_seconds * 4 + 10
        return in_thread(make, limit=limit, address=str(self.config.effective_grpc_host_port))

    def _renew_memory(self) -> Scheduler:
        """A fresh memory scheduler: the runs of a closed event loop ended with it.

        :raises NotSupportedError: the scheduler was given to the client, not built by it.
        """
        if self._given is not None:
            raise NotSupportedError(
                "the memory scheduler given to this HatchetClient ran in an event loop that is now "
                "closed; give the client a new scheduler for the new loop"
            )
        scheduler = self._build(lambda name: name not in self._paused)
        drive(scheduler.connect(), "connect")
        self._scheduler, self._loop = scheduler, None
        return scheduler

    async def _ready(self) -> Scheduler:
        """The scheduler connected in the running loop, (re)built when needed."""
        self._require()
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:
            scheduler = self._require()
            if self._home is not None:
                return scheduler  # it lives in its own loop; _call forwards to it
            if self._boot is not None and self._loop is loop:
                boot, self._boot = self._boot, None
                await boot
            if self._loop is loop and self._built_generation == self._generation:
                return scheduler
            if scheduler.capabilities.in_process:
                if self._loop is not None and self._loop is not loop:
                    if not self._loop.is_closed():
                        raise NotSupportedError(
                            "this HatchetClient's memory backend runs in another event loop, which "
                            "holds its runs: use the client from that loop"
                        )
                    scheduler = self._renew_memory()
                if self._closing:  # a disconnect() still stopping the worker
                    await asyncio.gather(*self._closing, return_exceptions=True)
                self._add_declared(scheduler)
                await scheduler.connect()  # registers crons declared since
                await scheduler.start_worker()
            else:
                if self._loop is not None:
                    await scheduler.disconnect()
                if self._given is not None:
                    scheduler = self._given
                    self._add_declared(scheduler)
                else:
                    scheduler = self._build(lambda name: name not in self._paused)
                await scheduler.connect()
                self._scheduler = scheduler
            self._loop = loop
            self._built_generation = self._generation
            return scheduler

    async def _call(self, work: Callable[[Scheduler], Coroutine[Any, Any, T]]) -> T:
        """``work(scheduler)`` where the scheduler lives: in this loop, or
        forwarded to the loop of its own that ``connect()`` started."""
        scheduler = await self._ready()
        home = self._home
        if home is not None and asyncio.get_running_loop() is not home.loop:
            return await home.forward(work(scheduler))
        return await work(scheduler)
