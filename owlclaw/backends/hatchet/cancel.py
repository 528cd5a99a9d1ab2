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
from typing import Any

from owlclaw.backends.hatchet.batch import run_request
from owlclaw.backends.hatchet.lookups import POLL_SECONDS, Lookups
from owlclaw.backends.hatchet.naming import TOMBSTONE
from owlclaw.backends.hatchet.status import cancelled_info, schedule_info
from owlclaw.backends.hatchet.wire import CANCEL_MARK, DUE_KEY, ID_KEY, TASK_KEY
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import SchedulerConnectionError, SchedulerError, TaskNotFoundError
from owlclaw.scheduler.kit import dump_json
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until

__all__ = ["cancel_task"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

CANCEL_LIST_SECONDS = 20.0  # how long cancel_task tries again while the engine's listings lag
CANCEL_CONFIRM_SECONDS = 10.0  # how long cancel_task waits for a cancelled run to stop
CANCEL_SETTLE_SECONDS = 2.0  # a started run reading CANCELLED, unmarked, is final this long after the cancel
FIRE_WINDOW = timedelta(seconds=1)  # a schedule due this soon (or overdue) may fire while it is deleted
FIRED_WATCH_SECONDS = 3.0  # how long a deleted schedule's run may take to be listed


async def cancel_task(lookups: Lookups, task_id: str) -> bool:
    """True if this call cancelled the task; False if it had finished (or was cancelled) already."""
    lookups.conn.require()
    if task_id in lookups.cancelled:
        return False
    # The engine's listings lag its writes a little: a schedule made a moment
    # ago may not be listed yet, a fired one's run not yet visible. Try again
    # every POLL_SECONDS / 2 for CANCEL_LIST_SECONDS.
    try:
        answer: bool | None = await poll_until(
            lambda: _try_cancel(lookups, task_id),
            lambda answer: answer is not None,
            timeout=CANCEL_LIST_SECONDS,
            interval=POLL_SECONDS / 2,
            what=f"cancel task {task_id}",
        )
    except PollTimeoutError:
        raise SchedulerConnectionError(
            f"could not cancel task {task_id}: Hatchet at {lookups.conn.host} did not list its schedule "
            "or its run; try again"
        ) from None
    assert answer is not None
    return answer


async def _try_cancel(lookups: Lookups, task_id: str) -> bool | None:
    """One try of ``cancel_task``: its answer, or None when the engine does not
    list the schedule or its run yet."""
    conn = lookups.conn
    client = conn.require()
    local = lookups.local.get(task_id)
    if local is not None and local.schedule_id is not None and await _cancel_own_schedule(lookups, task_id):
        return True
    found = await lookups.lookup(task_id)
    if not isinstance(found, TaskInfo):
        if (await lookups.info(found, with_error=False)).state.is_final:
            return False
        with conn.sdk("cancel a run"):
            await client.runs.aio_cancel(found.run_id)
        return await _run_cancelled(lookups, task_id, found.run_id)
    if found.state.is_final:
        return False
    if found.state is TaskState.SCHEDULED:
        if await _cancel_schedule(lookups, found):
            return True
    elif local is not None and local.due is None:
        with conn.sdk("cancel a run"):  # run_task's id is the run's id
            await client.runs.aio_cancel(task_id)
        return await _run_cancelled(lookups, task_id, task_id)
    return None


async def _run_cancelled(lookups: Lookups, task_id: str, run_id: str) -> bool:
    """After asking the engine to cancel a run: False if the run finished
    first (the cancel came too late), so the answer matches its final state.

    A run that had started and reads CANCELLED may still turn SUCCEEDED: its
    code can have returned just before the cancel reached its worker, the
    result then on its way. The worker's CANCEL_MARK in the run's log says
    the cancel came first (the SDK then drops the result), and settles it at
    once; without it, the read CANCEL_SETTLE_SECONDS after the request
    decides. The status is read every POLL_SECONDS / 2 for CANCEL_CONFIRM_SECONDS."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    task_runs: list[str] = []

    async def read() -> TaskInfo | None:
        """The final answer's TaskInfo, or None while it is not known yet."""
        info = await lookups.status(task_id)
        if not info.state.is_final:
            return None
        if info.state is not TaskState.CANCELLED or info.started_at is None:
            return info
        if await _marked(lookups, run_id, task_runs) or loop.time() - asked >= CANCEL_SETTLE_SECONDS:
            return info
        return None

    try:
        info: TaskInfo | None = await poll_until(
            read,
            lambda info: info is not None,
            timeout=CANCEL_CONFIRM_SECONDS,
            interval=POLL_SECONDS / 2,
            what=f"cancelled task {task_id} to stop",
        )
    except PollTimeoutError:
        return True  # the engine has the cancel; the run is still stopping
    assert info is not None
    return info.state is TaskState.CANCELLED


async def _marked(lookups: Lookups, run_id: str, task_runs: list[str]) -> bool:
    """Whether the run's worker logged CANCEL_MARK (``task_runs`` caches the run's task ids)."""
    client = lookups.conn.require()
    try:
        if not task_runs:
            details = await lookups.get_run(run_id)
            task_runs += [str(t.metadata.id) for t in (getattr(details, "tasks", None) or [])]
        for task_run in task_runs:
            with lookups.conn.sdk("list a run's logs"):
                rows = (await client.logs.aio_list(task_run, limit=100)).rows or []
            if any(row.message == CANCEL_MARK for row in rows):
                return True
    except SchedulerError:
        return False  # the settle read decides
    return False


async def _fired(lookups: Lookups, task_id: str) -> bool:
    """Whether a run of this schedule shows up within FIRED_WATCH_SECONDS:
    the engine may have fired it just before it was deleted."""
    try:
        run: Any | None = await poll_until(
            lambda: lookups.run_by_metadata(task_id),
            lambda details: details is not None,
            timeout=FIRED_WATCH_SECONDS,
            interval=POLL_SECONDS,
            what=f"a run of deleted schedule {task_id}",
        )
    except PollTimeoutError:
        return False
    return run is not None


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
        lookups.conn.later(_bury(lookups, info))  # off the answer's path (see _bury)
        return True
    return False


async def _cancel_own_schedule(lookups: Lookups, task_id: str) -> bool:
    """A schedule this process made, deleted by the engine id it remembers (no
    listing); False when it fired (or is unknown): the general path takes over."""
    local = lookups.local[task_id]
    assert local.due is not None and local.schedule_id is not None
    try:
        with lookups.conn.sdk("delete a schedule", missing="the schedule fired"):
            await lookups.conn.require().scheduled.aio_delete(local.schedule_id)
    except TaskNotFoundError:
        return False
    info = schedule_info(task_id, local.task_name, local.payload, local.due)
    if local.due - utc_now() < FIRE_WINDOW and await _fired(lookups, task_id):
        return False  # deleted as it fired: cancel its run instead
    lookups.cancelled[task_id] = cancelled_info(info, utc_now())
    lookups.conn.later(_bury(lookups, info))  # off the answer's path (see _bury)
    return True


async def _bury(lookups: Lookups, info: TaskInfo) -> None:
    """Leave a record of a cancelled schedule that other processes can find:
    a run of the tombstone workflow (which no worker serves), cancelled at once.
    Run in the background once ``cancel_task`` has answered (this process
    already knows, ``lookups.cancelled``); ``disconnect`` waits for it."""
    conn = lookups.conn
    assert info.scheduled_at is not None
    metadata = {ID_KEY: info.id, TASK_KEY: info.task_name, DUE_KEY: info.scheduled_at.isoformat()}
    client = conn.require()
    what = "record a cancelled schedule"
    try:
        if conn.batcher is not None:
            request = run_request(client, TOMBSTONE, dump_json(info.payload, "payload"), metadata, None)
            run_id = await conn.batcher.trigger(request, what)
        else:
            with conn.sdk(what):
                ref = await conn.tombstone.aio_run(
                    info.payload, wait_for_result=False, additional_metadata=metadata
                )
            run_id = str(ref.workflow_run_id)
    except SchedulerError as exc:  # the schedule is gone either way
        log.warning("cancelled schedule %s is remembered in this process only: %s", info.id, exc)
        return
    # the tombstone is read from its metadata in any state; cancelled, it does
    # not wait in the queue until its schedule timeout fails it
    await _cancel_tombstone(lookups, run_id)


async def _cancel_tombstone(lookups: Lookups, run_id: str) -> None:
    """A tombstone left queued would fail at its schedule timeout: cancel it."""
    try:
        with lookups.conn.sdk("cancel a tombstone run"):
            await lookups.conn.require().runs.aio_cancel(run_id)
    except SchedulerError as exc:
        log.debug("tombstone run %s stays queued: %s", run_id, exc)
