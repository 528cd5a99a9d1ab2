"""The Hatchet backend: every owlclaw task is a Hatchet task.

``HatchetScheduler`` holds the protocol's public methods; the work is done by
its collaborators (docs/hatchet.md, "Code layout", lists them). How ids,
workers, tombstones and states map onto the engine is in docs/hatchet.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions

from owlclaw.backends.hatchet.cancel import cancel_task
from owlclaw.backends.hatchet.client import Connection
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.status import LocalRecord
from owlclaw.backends.hatchet.wire import DUE_KEY, ID_KEY, QUEUED_KEY
from owlclaw.backends.hatchet.worker import serve
from owlclaw.scheduler.base import (
    BaseScheduler,
    check_payload,
    dump_json,
    json_roundtrip,
    resolve_due_time,
    run_priority,
)
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import next_fire_time, normalize_cron
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import InvalidCronError, NotSupportedError, TaskNotFoundError
from owlclaw.scheduler.models import CronInfo, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability import current_metadata, traced_call

__all__ = ["HatchetScheduler"]


class HatchetScheduler(BaseScheduler):
    """Runs owlclaw tasks on a Hatchet engine (ids and states: docs/hatchet.md)."""

    backend_name = "hatchet"

    def __init__(self, config: HatchetConfig | None = None) -> None:
        super().__init__()
        self.config = config or HatchetConfig.model_validate({})
        self._connection = Connection(self.config, self.tasks, self)
        self._lookups = Lookups(self._connection)

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

    def _task_added(self, options: TaskOptions) -> None:
        self._connection.task_added(options)

    # connection

    async def connect(self) -> None:
        await self._connection.connect()

    async def disconnect(self) -> None:
        await self._connection.drop()

    # scheduling

    @traced_call("run_task")
    async def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        conn = self._connection
        conn.require()
        self._options(task_name)
        standalone = conn.standalone(task_name)
        data = check_payload(payload)
        run_prio = run_priority(self._options(task_name), priority)
        metadata = {QUEUED_KEY: utc_now().isoformat(), **current_metadata()}
        with conn.sdk(f"run task {task_name!r}"):
            ref = await standalone.aio_run(
                data, wait_for_result=False, additional_metadata=metadata, priority=run_prio
            )
        task_id = str(ref.workflow_run_id)
        self._lookups.local[task_id] = LocalRecord(task_name, data, utc_now(), None)
        return task_id

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
        conn = self._connection
        client = conn.require()
        due = resolve_due_time(utc_now(), delay_seconds, at)
        run_prio = run_priority(self._options(task_name), priority)
        data = check_payload(payload)
        task_id = str(uuid.uuid4())
        metadata = {ID_KEY: task_id, DUE_KEY: due.isoformat(), **current_metadata()}
        # Through the admin client: Standalone.aio_schedule sends an empty
        # payload as "" and the engine rejects that as invalid JSON.
        with conn.sdk(f"schedule task {task_name!r}"):
            await client._client.admin.aio_schedule_workflow(
                task_name,
                [due],
                dump_json(data, "payload"),
                ScheduleTriggerWorkflowOptions(additional_metadata=metadata, priority=run_prio),
            )
        self._lookups.local[task_id] = LocalRecord(task_name, data, utc_now(), due)
        return task_id

    # crons

    @traced_call("add_cron")
    async def add_cron(self, task_name: str, expression: str, payload: Any = None) -> str:
        conn = self._connection
        client = conn.require()
        expression = normalize_cron(expression)
        self._options(task_name)
        data = check_payload(payload)
        invalid = f"Hatchet rejected cron expression {expression!r}"
        with conn.sdk(f"add a cron for {task_name!r}", invalid=invalid):
            cron = await client.cron.aio_create(task_name, f"owlclaw-{uuid.uuid4()}", expression, data, {})
        return str(cron.metadata.id)

    async def remove_cron(self, cron_id: str) -> None:
        conn = self._connection
        client = conn.require()
        missing = f"no cron with id {cron_id!r}; list them with list_crons()"
        # the engine answers 500 (not 404) for an unknown cron id, and does not
        # filter by namespace: look it up among this namespace's crons
        if cron_id not in {c.id for c in await self.list_crons()}:
            raise TaskNotFoundError(missing)
        with conn.sdk("remove a cron", missing=missing):
            await client.cron.aio_delete(cron_id)

    async def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        conn = self._connection
        client = conn.require()
        kwargs: dict[str, Any] = {"limit": 1000}
        if task_name is not None:
            kwargs["workflow_name"] = conn.names.workflow(task_name)
        with conn.sdk("list crons"):
            rows = (await client.cron.aio_list(**kwargs)).rows or []
        now = utc_now()
        found = []
        for row in rows:
            name = conn.names.strip(row.workflow_name)
            if name is None or (task_name is not None and name != task_name):
                continue
            try:
                nxt: datetime | None = next_fire_time(row.cron, now)
            except InvalidCronError:
                nxt = None
            payload = json_roundtrip(dict(row.input or {}), "payload")
            found.append(
                CronInfo(
                    id=str(row.metadata.id),
                    task_name=name,
                    expression=row.cron,
                    payload=payload,
                    next_run_at=nxt,
                )
            )
        found.sort(key=lambda c: c.id)
        return found

    # status, cancel, wait, listings

    async def get_task_status(self, task_id: str) -> TaskInfo:
        return await self._lookups.status(task_id)

    @traced_call("cancel_task")
    async def cancel_task(self, task_id: str) -> bool:
        return await cancel_task(self._lookups, task_id)

    async def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        return await self._lookups.wait(task_id, timeout)

    async def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        return await self._lookups.list_scheduled(task_name)

    async def list_tasks(
        self,
        task_name: str | None = None,
        *,
        states: Iterable[TaskState] | None = None,
        limit: int = 100,
    ) -> list[TaskInfo]:
        return await self._lookups.list_runs(task_name, states, limit)

    async def diagnose(self) -> list[Finding]:
        """Checks for ``owlclaw-scheduler doctor``: versions and workers."""
        from owlclaw.backends.hatchet.doctor import diagnose

        conn = self._connection
        with conn.sdk("run the doctor's checks"):
            return await diagnose(conn.require(), conn.names.prefix, self.namespace)

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
        finish, then returns (the SDK exits the process with status 0).
        """
        if not self._tasks:
            raise NotSupportedError("no tasks are registered: declare some with @scheduler.task first")
        conn = self._connection
        client = conn.client or conn.build()
        serve(client, self._tasks, conn.standalones, self.config, conn.host)
