"""A held run's outcome, confirmed to the engine by the worker that ran it.

The engine can lose a run's final event: its PostgreSQL message queue marks a
message taken before handling it, and one taken as the engine stops or loses
its database is never handled (docs/hatchet.md, "Short delays"). The run then
reads RUNNING until its execution timeout (24 h for a task without
``timeout``), its worker slot counted as busy. A held run is exposed more than
others: its worker runs it at its due time whatever the engine's state, so in
an outage its attempt ends near the engine's stop or restart.

So after a held run's attempt, :func:`confirm` looks at the run on the
engine's own (core) side and sends the same final event again while it still
reads RUNNING. The task is never run again: the engine ends the attempt that
ran, once (an event for an attempt that is already over changes nothing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hatchet_sdk import Context
from hatchet_sdk.clients.admin import RunStatus
from hatchet_sdk.contracts.dispatcher_pb2 import (
    STEP_EVENT_TYPE_COMPLETED,
    STEP_EVENT_TYPE_FAILED,
    StepActionEventType,
)
from hatchet_sdk.exceptions import NonRetryableException, TaskRunError

__all__ = ["CONFIRM_AFTER", "CONFIRM_WITHIN", "FinalEvent", "confirm", "confirm_later", "final_event"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

# seconds after the attempt: the SDK's own retries (10 s apart at most) have
# normally landed by then when the engine was only unreachable; an event sent
# twice does no harm (the engine ends an attempt once) but is avoided
CONFIRM_AFTER = 30.0
CONFIRM_EVERY = 60.0  # seconds between looks at most (the wait doubles from CONFIRM_AFTER)
CONFIRM_WITHIN = 600.0  # seconds: then the engine's execution timeout is the backstop
CALL_TIMEOUT = 30.0  # one look or one send

#: what the SDK sent when the attempt ended: (event type, payload, should_not_retry)
FinalEvent = tuple[StepActionEventType, str | None, bool]

_pending: set[asyncio.Task[int]] = set()  # kept referenced until done


def final_event(run_id: str, output: dict[str, Any] | None, error: BaseException | None) -> FinalEvent:
    """The event the SDK sends for this outcome (``runner.step_run_callback``):
    COMPLETED with the output as JSON, or FAILED with the error serialized."""
    if error is None:
        return STEP_EVENT_TYPE_COMPLETED, json.dumps(output) if output else None, False
    assert isinstance(error, Exception)
    payload = TaskRunError.from_exception(error, run_id).serialize(include_metadata=True)
    return STEP_EVENT_TYPE_FAILED, payload, isinstance(error, NonRetryableException)


async def confirm(
    run_id: str,
    look: Callable[[], Awaitable[RunStatus]],
    send: Callable[[], Awaitable[object]],
    *,
    after: float = CONFIRM_AFTER,
    within: float = CONFIRM_WITHIN,
) -> int:
    """Until the engine stops reporting the run RUNNING (or ``within`` seconds
    pass), look at it with waits doubling from ``after``, and ``send`` its final
    event again each time it still reads RUNNING. A look that fails (the
    engine is down) is tried again later. Returns how many times it sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    wait, sent = after, 0
    while loop.time() + wait <= deadline:
        await asyncio.sleep(wait)
        wait = min(wait * 2, CONFIRM_EVERY)
        try:
            status = await asyncio.wait_for(look(), CALL_TIMEOUT)
        except Exception:  # noqa: BLE001 - the engine or its database is down: look again later
            continue
        if status is not RunStatus.RUNNING:
            return sent
        try:
            await asyncio.wait_for(send(), CALL_TIMEOUT)
        except Exception:  # noqa: BLE001 - as above
            continue
        sent += 1
        log.warning(
            "held run %s still read RUNNING on the engine after its attempt: sent its final event again",
            run_id,
            extra={"event": "held_outcome_resent"},
        )
    log.warning(
        "held run %s still read RUNNING on the engine %.0f s after its attempt ended; "
        "its execution timeout will end it",
        run_id,
        within,
        extra={"event": "held_outcome_unconfirmed"},
    )
    return sent


def confirm_later(ctx: Context, event: FinalEvent) -> None:
    """Start :func:`confirm` for the run of ``ctx`` in this worker's loop."""
    run_id = str(ctx.workflow_run_id)
    action = ctx._action
    dispatcher = ctx._dispatcher_client
    runs = ctx._runs_client

    async def look() -> RunStatus:
        return (await runs.aio_get_details(run_id)).status

    async def send() -> object:
        # the SDK's call logs and swallows a failure, answering None
        if await dispatcher.send_step_action_event(action, event[0], event[1], event[2]) is None:
            raise ConnectionError(f"the engine did not take the final event of run {run_id}")
        return None

    task = asyncio.get_running_loop().create_task(confirm(run_id, look, send))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
