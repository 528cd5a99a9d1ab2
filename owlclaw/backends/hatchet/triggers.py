"""What makes runs happen: ``run_task`` and ``schedule_task`` (``submit``) and crons.

``HatchetScheduler``'s hooks call these once ``BaseScheduler`` has done the
common checks (connected, task known, due time, priority, payload JSON).

``run_task``'s id is the engine's run id. ``schedule_task``'s is our own UUID,
stored with the due time in the schedule's metadata: the engine deletes a
fired one-off schedule and gives its run a new id with no link back, and the
run inherits the metadata. Both are remembered in ``Lookups.local`` for a
while (``LOCAL_KEEP``), to answer for them until the engine's read side shows
them.

A schedule due within ``HOLD_SECONDS`` (``hold_short_delays``, on by default)
is queued as a run at once (its id is the run's), carrying its due time and
``HOLD_KEY``; its worker holds it until due (``worker.execute``), and it
reads SCHEDULED until then (``status.task_info``). The engine's ticker would
fire it up to 5 s late (docs/hatchet.md, "Short delays").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hatchet_sdk.runnables.contextvars import ctx_durable_context
from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions

from owlclaw.backends.hatchet.batch import run_request
from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.status import LocalRecord
from owlclaw.backends.hatchet.wire import DUE_KEY, HOLD_KEY, HOLD_SECONDS, ID_KEY, QUEUED_KEY
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import next_fire_time
from owlclaw.scheduler.errors import InvalidCronError, TaskNotFoundError
from owlclaw.scheduler.kit import dump_json, json_roundtrip
from owlclaw.scheduler.models import CronInfo, TaskOptions

__all__ = ["add_cron", "list_crons", "remove_cron", "submit"]


async def submit(
    lookups: Lookups,
    options: TaskOptions,
    data: dict[str, Any],
    due: datetime | None,
    priority: int,
    metadata: dict[str, str],
) -> str:
    """A run queued now (``due`` None; its id is the engine's run id) or a
    schedule due then (its id is our UUID, in the schedule's metadata)."""
    if due is None:
        return await _run_now(lookups, options, data, priority, metadata)
    if lookups.conn.config.hold_short_delays and (due - utc_now()).total_seconds() < HOLD_SECONDS:
        return await _hold(lookups, options, data, due, priority, metadata)
    return await _schedule(lookups, options, data, due, priority, metadata)


async def _hold(
    lookups: Lookups,
    options: TaskOptions,
    data: dict[str, Any],
    due: datetime,
    priority: int,
    trace: dict[str, str],
) -> str:
    """A short delay: a run queued now that its worker holds until ``due``. Its
    id is the run's, as ``run_task``'s: made inside a task, it is that run's
    child, which the engine gives back to a retried attempt instead of a new run."""
    metadata = {DUE_KEY: due.isoformat(), HOLD_KEY: "1", **trace}
    run_id = await _run_now(lookups, options, data, priority, metadata, due=due)
    lookups.local[run_id] = LocalRecord(options.name, data, utc_now(), due, held=True)
    return run_id


async def _run_now(
    lookups: Lookups,
    options: TaskOptions,
    data: dict[str, Any],
    priority: int,
    trace: dict[str, str],
    *,
    due: datetime | None = None,
) -> str:
    conn = lookups.conn
    client = conn.require()
    standalone = conn.standalone(options.name)
    metadata = {QUEUED_KEY: utc_now().isoformat(), **trace}
    what = f"run task {options.name!r}"
    # a durable task's children go through its durable context, as the SDK does
    if conn.batcher is not None and ctx_durable_context.get() is None:
        request = run_request(client, options.name, dump_json(data, "payload"), metadata, priority)
        task_id = await conn.batcher.trigger(request, what)
    else:
        with conn.sdk(what):
            ref = await standalone.aio_run(
                data, wait_for_result=False, additional_metadata=metadata, priority=priority
            )
        task_id = str(ref.workflow_run_id)
    if due is None:
        lookups.local[task_id] = LocalRecord(options.name, data, utc_now(), None)
    return task_id


async def _schedule(
    lookups: Lookups,
    options: TaskOptions,
    data: dict[str, Any],
    due: datetime,
    priority: int,
    trace: dict[str, str],
) -> str:
    client = lookups.conn.require()
    task_id = str(uuid.uuid4())
    metadata = {ID_KEY: task_id, DUE_KEY: due.isoformat(), **trace}
    # Through the admin client: Standalone.aio_schedule sends an empty
    # payload as "" and the engine rejects that as invalid JSON.
    with lookups.conn.sdk(f"schedule task {options.name!r}"):
        version = await client._client.admin.aio_schedule_workflow(
            options.name,
            [due],
            dump_json(data, "payload"),
            ScheduleTriggerWorkflowOptions(additional_metadata=metadata, priority=priority),
        )
    made = list(getattr(version, "scheduled_workflows", None) or [])
    schedule_id = str(made[0].id) if len(made) == 1 else None
    lookups.local[task_id] = LocalRecord(options.name, data, utc_now(), due, schedule_id)
    return task_id


async def add_cron(lookups: Lookups, options: TaskOptions, expression: str, data: dict[str, Any]) -> str:
    """A cron named ``owlclaw-<uuid>``; its id is the engine's."""
    conn = lookups.conn
    client = conn.require()
    invalid = f"Hatchet rejected cron expression {expression!r}"
    with conn.sdk(f"add a cron for {options.name!r}", invalid=invalid):
        cron = await client.cron.aio_create(options.name, f"owlclaw-{uuid.uuid4()}", expression, data, {})
    return str(cron.metadata.id)


async def remove_cron(lookups: Lookups, cron_id: str) -> None:
    conn = lookups.conn
    client = conn.require()
    missing = f"no cron with id {cron_id!r}; list them with list_crons()"
    # the engine answers 500 (not 404) for an unknown cron id, and does not
    # filter by namespace: look it up among this namespace's crons
    if cron_id not in {c.id for c in await list_crons(lookups, None)}:
        raise TaskNotFoundError(missing)
    with conn.sdk("remove a cron", missing=missing):
        await client.cron.aio_delete(cron_id)


async def list_crons(lookups: Lookups, task_name: str | None) -> list[CronInfo]:
    """This namespace's crons, sorted by id; ``next_run_at`` is computed here, in UTC."""
    conn = lookups.conn
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
                id=str(row.metadata.id), task_name=name, expression=row.cron, payload=payload, next_run_at=nxt
            )
        )
    found.sort(key=lambda c: c.id)
    return found
