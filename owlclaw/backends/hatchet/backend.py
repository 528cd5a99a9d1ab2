"""The Hatchet backend: every owlclaw task is a Hatchet task.

``HatchetScheduler`` implements the hooks of ``BaseScheduler`` (which holds
the protocol's public methods and their common checks); the work is done by
its collaborators (docs/hatchet.md, "Code layout", lists them). How ids,
workers, tombstones and states map onto the engine is in docs/hatchet.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.hatchet import triggers
from owlclaw.backends.hatchet.cancel import cancel_task
from owlclaw.backends.hatchet.chain import Chain, Sweeper
from owlclaw.backends.hatchet.client import Connection
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.schedules import ScheduleHooks
from owlclaw.backends.hatchet.store import SETTING, ScheduleStore
from owlclaw.backends.hatchet.worker import serve
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import NotSupportedError, TaskDefinitionError
from owlclaw.scheduler.kit import BaseScheduler
from owlclaw.scheduler.models import CronInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.protocol import Capabilities

__all__ = ["HatchetScheduler"]


class HatchetScheduler(ScheduleHooks, BaseScheduler):
    """Runs owlclaw tasks on a Hatchet engine (ids and states: docs/hatchet.md)."""

    backend_name = "hatchet"

    @property
    def capabilities(self) -> Capabilities:
        """Workers run in their own process (``run_worker``); ``doctor`` can diagnose it;
        schedules once ``state_database_url`` is set (schedules.py)."""
        return Capabilities(
            in_process=False,
            virtual_time=False,
            diagnose=True,
            start_worker=False,
            schedules=self.config.state_database_url is not None,
        )

    def __init__(self, config: HatchetConfig | None = None) -> None:
        super().__init__()
        self.config = config or HatchetConfig.model_validate({})
        self._chain: Chain | None = None
        self._connection = Connection(self.config, self.tasks, self)
        self._lookups = Lookups(self._connection)
        if self.config.state_database_url is not None:
            store = ScheduleStore(self.config.state_database_url)
            self._chain = Chain(self._lookups, store, self.namespace)

    @classmethod
    def from_config(cls, config: HatchetConfig) -> HatchetScheduler:
        return cls(config)

    def __repr__(self) -> str:
        host = self._connection.host
        return f"HatchetScheduler(host={host!r}, namespace={self.namespace!r}, tasks={len(self._tasks)})"

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def _check_task(self, options: TaskOptions) -> None:
        self._connection.names.check(options)
        if options.timezone != "UTC" and self._chain is None:
            raise TaskDefinitionError(
                f"task {options.name!r}: cron in timezone={options.timezone!r} needs schedules, which "
                f"keep their state in PostgreSQL on Hatchet: set {SETTING}, or write the cron in UTC"
            )

    def _task_added(self, options: TaskOptions) -> None:
        self._connection.task_added(options)

    # connection

    async def connect(self) -> None:
        await self._connection.connect()
        if self._chain is not None:
            try:
                await self._chain.store.ensure_schema()  # the state database answers
                await self._declare_zoned_crons(dict(self._tasks))
            except BaseException:
                await self.disconnect()
                raise

    async def disconnect(self) -> None:
        if self._chain is not None:
            await self._chain.close()
        await self._connection.drop()

    def _check_connected(self, operation: str) -> None:
        """Connected while the SDK client exists (``Connection.require``)."""
        self._connection.require()

    # the hooks of BaseScheduler: scheduling and crons

    async def _submit(
        self,
        options: TaskOptions,
        payload: dict[str, Any],
        *,
        due: datetime | None,
        priority: int,
        metadata: dict[str, str],
    ) -> str:
        return await triggers.submit(self._lookups, options, payload, due, priority, metadata)

    async def _add_cron(self, options: TaskOptions, expression: str, payload: dict[str, Any]) -> str:
        return await triggers.add_cron(self._lookups, options, expression, payload)

    async def _remove_cron(self, cron_id: str) -> None:
        await triggers.remove_cron(self._lookups, cron_id)

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        return await triggers.list_crons(self._lookups, task_name)

    # the hooks of BaseScheduler: status, cancel, wait, listings

    async def _status(self, task_id: str) -> TaskInfo:
        return await self._lookups.status(task_id)

    async def _cancel(self, task_id: str) -> bool:
        return await cancel_task(self._lookups, task_id)

    async def _wait(self, task_id: str, timeout: float) -> TaskInfo:
        return await self._lookups.wait(task_id, timeout)

    async def _list_scheduled(self, task_name: str | None) -> list[TaskInfo]:
        return await self._lookups.list_scheduled(task_name)

    async def _list_runs(
        self, task_name: str | None, *, states: frozenset[TaskState] | None, limit: int
    ) -> list[TaskInfo]:
        return await self._lookups.list_runs(task_name, states, limit)

    async def diagnose(self) -> list[Finding]:
        """Checks for ``owlclaw-scheduler doctor``: versions, workers, and the
        schedules' state database when it is configured."""
        from owlclaw.backends.hatchet.doctor import diagnose, state_database

        conn = self._connection
        with conn.sdk("run the doctor's checks"):
            found = await diagnose(conn.require(), conn.names.prefix, self.namespace)
        if self._chain is not None:
            found.append(await state_database(self._chain.store))
        return found

    # workers

    async def start_worker(self) -> None:
        raise NotSupportedError(
            "the Hatchet SDK's worker needs the main thread and its own event loop, so it cannot "
            "start inside a running asyncio program: run `owlclaw-scheduler worker APP` "
            "(APP = module:scheduler) in its own process"
        )

    async def stop_worker(self) -> None:
        return None

    def run_worker(self) -> None:
        """Run a Hatchet worker for every registered task until SIGTERM/SIGINT.

        SIGTERM pauses new assignments, waits for the runs in flight to
        finish, then returns (the SDK exits the process with status 0). Runs
        still in flight after ``shutdown_grace_seconds`` are left to the
        engine, which hands them to another worker; the process exits with
        status 1.
        """
        if not self._tasks:
            raise NotSupportedError("no tasks are registered: declare some with @scheduler.task first")
        conn = self._connection
        client = conn.client or conn.build()
        sweeper = None
        if self._chain is not None:
            sweeper = Sweeper(self._chain, slack=timedelta(seconds=self.config.schedule_sweep_slack_seconds))
        internal = list(conn.internal.values())
        serve(client, self._tasks, conn.standalones, self.config, conn.host, internal, sweeper)
