"""The machinery under ``HatchetClient``: which scheduler answers, in which
event loop, and how declarations reach it.

On Hatchet the synchronous calls (``connect()``, ``pause_task()``...) use a
short-lived scheduler in a thread of their own, and the awaited calls one
connected in the caller's loop. On memory one scheduler keeps the runs: its
worker lives in the caller's running loop or, connected outside any loop, in a
loop of its own on a daemon thread (``Home``) that every awaited call reaches.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from owlclaw.integrations.hatchet_client._bridge import (
    ClientNotConnectedError,
    Home,
    TaskNotDeclaredError,
    drive,
    hatchet_settings,
    in_thread,
    running_loop,
)
from owlclaw.integrations.hatchet_client._config import HatchetConfig
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import ConfigError, NotSupportedError
from owlclaw.scheduler.kit import BaseScheduler
from owlclaw.scheduler.models import CronInfo, TaskOptions
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import create_scheduler

__all__ = ["ClientPlumbing"]

T = TypeVar("T")

_SOURCE = "hatchet: (owlclaw.integrations.hatchet_client)"


class ClientPlumbing:
    """State and internals of ``HatchetClient`` (its public methods are in ``client.py``)."""

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
                        new_id = await scheduler.add_cron(name, options.cron, {}, timezone=options.timezone)
                        if cron.paused:  # re-declared while pause_task holds it: it stays paused
                            await scheduler.pause_schedule(new_id, cron.note)
                    return

        self._run_here(swap, "re-declaring a task")

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
