"""``cancel_task``: deleting a pending schedule (and leaving a tombstone), or
cancelling a run and waiting until its final state agrees with the answer.

The engine deletes a cancelled schedule and keeps no trace of it, so a
cancelled schedule is recorded as a run of the ``owlclaw-cancelled``
workflow (no worker serves it), cancelled at once, carrying the schedule's
id, task name, due time and payload: any process then reports it CANCELLED.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from owlclaw.backends.hatchet.lookups import POLL_SECONDS, Lookups
from owlclaw.backends.hatchet.status import cancelled_info
from owlclaw.backends.hatchet.wire import DUE_KEY, ID_KEY, TASK_KEY
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import SchedulerConnectionError, SchedulerError, TaskNotFoundError
from owlclaw.scheduler.models import TaskInfo, TaskState

__all__ = ["cancel_task"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

CANCEL_RETRIES = 50  # x POLL_SECONDS / 2: how long cancel_task waits for the engine's listings
CANCEL_CONFIRM_SECONDS = 10.0  # how long cancel_task waits for a cancelled run to stop
CANCEL_SETTLE_SECONDS = 2.0  # a started run reading CANCELLED is read again this long after the cancel
FIRE_WINDOW = timedelta(seconds=1)  # a schedule due this soon (or overdue) may fire while it is deleted
FIRED_WATCH_SECONDS = 3.0  # how long a deleted schedule's run may take to be listed


async def cancel_task(lookups: Lookups, task_id: str) -> bool:
    """True if this call cancelled the task; False if it had finished (or was cancelled) already."""
    conn = lookups.conn
    client = conn.require()
    if task_id in lookups.cancelled:
        return False
    # The engine's listings lag its writes a little: a schedule made a moment
    # ago may not be listed yet, a fired one's run not yet visible. Retry a while.
    for _ in range(CANCEL_RETRIES):
        found = await lookups.lookup(task_id)
        if not isinstance(found, TaskInfo):
            if (await lookups.info(found, with_error=False)).state.is_final:
                return False
            with conn.sdk("cancel a run"):
                await client.runs.aio_cancel(found.run_id)
            return await _run_cancelled(lookups, task_id)
        if found.state.is_final:
            return False
        if found.state is TaskState.SCHEDULED:
            if await _cancel_schedule(lookups, found):
                return True
        elif (local := lookups.local.get(task_id)) is not None and local.due is None:
            with conn.sdk("cancel a run"):  # run_task's id is the run's id
                await client.runs.aio_cancel(task_id)
            return await _run_cancelled(lookups, task_id)
        await asyncio.sleep(POLL_SECONDS / 2)
    raise SchedulerConnectionError(
        f"could not cancel task {task_id}: Hatchet at {conn.host} did not list its schedule "
        "or its run; try again"
    )


async def _run_cancelled(lookups: Lookups, task_id: str) -> bool:
    """After asking the engine to cancel a run: False if the run finished
    first (the cancel came too late), so the answer matches its final state."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    deadline = asked + CANCEL_CONFIRM_SECONDS
    while True:
        info = await lookups.status(task_id)
        settle = asked + CANCEL_SETTLE_SECONDS - loop.time()
        if info.state is TaskState.CANCELLED and info.started_at is not None and settle > 0:
            # code that finished just before the cancel reached its worker is
            # recorded SUCCEEDED a moment after the cancel: look again
            await asyncio.sleep(settle)
            info = await lookups.status(task_id)
        if info.state.is_final:
            return info.state is TaskState.CANCELLED
        if loop.time() >= deadline:
            return True  # the engine has the cancel; the run is still stopping
        await asyncio.sleep(POLL_SECONDS)


async def _fired(lookups: Lookups, task_id: str) -> bool:
    """Whether a run of this schedule shows up: the engine may have fired
    it just before it was deleted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FIRED_WATCH_SECONDS
    while loop.time() < deadline:
        if await lookups.run_by_metadata(task_id) is not None:
            return True
        await asyncio.sleep(POLL_SECONDS)
    return False


async def _cancel_schedule(lookups: Lookups, info: TaskInfo) -> bool:
    """Delete a pending schedule; False if it is not listed (yet) or just fired."""
    conn = lookups.conn
    for row in await lookups.schedule_rows(info.id):
        if row.workflow_run_id:
            continue
        try:
            with conn.sdk("delete a schedule", missing="the schedule fired"):
                await conn.require().scheduled.aio_delete(str(row.metadata.id))
        except TaskNotFoundError:
            return False  # it fired meanwhile: cancel its run instead
        due_soon = info.scheduled_at is None or info.scheduled_at - utc_now() < FIRE_WINDOW
        if due_soon and await _fired(lookups, info.id):
            return False  # deleted as it fired: cancel its run instead
        lookups.cancelled[info.id] = cancelled_info(info, utc_now())
        await _bury(lookups, info)
        return True
    return False


async def _bury(lookups: Lookups, info: TaskInfo) -> None:
    """Leave a record of a cancelled schedule that other processes can find:
    a run of the tombstone workflow (which no worker serves), cancelled at once."""
    conn = lookups.conn
    assert info.scheduled_at is not None
    metadata = {ID_KEY: info.id, TASK_KEY: info.task_name, DUE_KEY: info.scheduled_at.isoformat()}
    try:
        with conn.sdk("record a cancelled schedule"):
            ref = await conn.tombstone.aio_run(
                info.payload, wait_for_result=False, additional_metadata=metadata
            )
            await conn.require().runs.aio_cancel(str(ref.workflow_run_id))
    except SchedulerError as exc:  # the schedule is gone either way
        log.warning("cancelled schedule %s is remembered in this process only: %s", info.id, exc)
