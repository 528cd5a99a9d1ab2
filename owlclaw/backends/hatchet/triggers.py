"""What makes runs happen: ``run_task``, ``schedule_task`` and crons.

``run_task``'s id is the engine's run id. ``schedule_task``'s is our own UUID,
stored with the due time in the schedule's metadata: the engine deletes a
fired one-off schedule and gives its run a new id with no link back, and the
run inherits the metadata. Both are remembered in ``Lookups.local`` until the
engine's read side shows them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions

from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.status import LocalRecord
from owlclaw.backends.hatchet.wire import DUE_KEY, ID_KEY, QUEUED_KEY
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import next_fire_time, normalize_cron
from owlclaw.scheduler.errors import InvalidCronError, TaskNotFoundError
from owlclaw.scheduler.kit import check_payload, dump_json, json_roundtrip, resolve_due_time, run_priority
from owlclaw.scheduler.models import CronInfo, TaskOptions
from owlclaw.scheduler.observability import current_metadata

__all__ = ["add_cron", "list_crons", "remove_cron", "run_task", "schedule_task"]

OptionsOf = Callable[[str], TaskOptions]  # the scheduler's registry look-up (TaskNotRegisteredError)


async def run_task(
    lookups: Lookups, options_of: OptionsOf, task_name: str, payload: Any, priority: int | None
) -> str:
    conn = lookups.conn
    conn.require()
    options = options_of(task_name)
    standalone = conn.standalone(task_name)
    data = check_payload(payload)
    run_prio = run_priority(options, priority)
    metadata = {QUEUED_KEY: utc_now().isoformat(), **current_metadata()}
    with conn.sdk(f"run task {task_name!r}"):
        ref = await standalone.aio_run(
            data, wait_for_result=False, additional_metadata=metadata, priority=run_prio
        )
    task_id = str(ref.workflow_run_id)
    lookups.local[task_id] = LocalRecord(task_name, data, utc_now(), None)
    return task_id


async def schedule_task(
    lookups: Lookups,
    options_of: OptionsOf,
    task_name: str,
    payload: Any,
    delay_seconds: float | None,
    at: datetime | None,
    priority: int | None,
) -> str:
    conn = lookups.conn
    client = conn.require()
    due = resolve_due_time(utc_now(), delay_seconds, at)
    run_prio = run_priority(options_of(task_name), priority)
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
    lookups.local[task_id] = LocalRecord(task_name, data, utc_now(), due)
    return task_id


async def add_cron(
    lookups: Lookups, options_of: OptionsOf, task_name: str, expression: str, payload: Any
) -> str:
    """A cron named ``owlclaw-<uuid>``; its id is the engine's."""
    conn = lookups.conn
    client = conn.require()
    expression = normalize_cron(expression)
    options_of(task_name)
    data = check_payload(payload)
    invalid = f"Hatchet rejected cron expression {expression!r}"
    with conn.sdk(f"add a cron for {task_name!r}", invalid=invalid):
        cron = await client.cron.aio_create(task_name, f"owlclaw-{uuid.uuid4()}", expression, data, {})
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
