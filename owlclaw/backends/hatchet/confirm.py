"""A run's outcome, confirmed to the engine by the worker that ran it.

The engine can lose a run's final event: its PostgreSQL message queue marks a
message taken before handling it, and one taken as the engine stops or loses
its database is never handled; with its database down it answers
UNAUTHENTICATED, which the SDK does not retry (docs/hatchet.md, "Short
delays"). The run then reads RUNNING until its execution timeout (24 h for a
task without ``timeout``), its worker slot counted as busy.

:func:`confirm` looks at such a run on the engine's own (core) side and sends
the same final event again while it still reads RUNNING. The task is never run
again: the engine ends the attempt that ran, once (an event for an attempt
that is already over changes nothing). Which runs get it:

- every held run (a short delay its worker holds until due): it runs at its
  due time whatever the engine's state, so in an outage its attempt ends near
  the engine's stop or restart;
- every other run that ends near an outage its worker saw (:class:`OutageWatch`):
  for 20 s after a run ended, the worker asks the engine about it once a
  second, and an answer that fails marks the outage. Confirming every run
  would cost an engine call per run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from hatchet_sdk import Context
from hatchet_sdk.clients.admin import RunStatus
from hatchet_sdk.contracts.dispatcher_pb2 import (
    STEP_EVENT_TYPE_COMPLETED,
    STEP_EVENT_TYPE_FAILED,
    StepActionEventType,
)
from hatchet_sdk.exceptions import NonRetryableException, TaskRunError

from owlclaw.backends.hatchet.errors import grpc_code
from owlclaw.backends.hatchet.wire import core_details_once

__all__ = [
    "CONFIRM_AFTER",
    "CONFIRM_WITHIN",
    "FinalEvent",
    "OutageWatch",
    "confirm",
    "confirm_later",
    "final_event",
    "outage_watch",
]

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
            "run %s still read RUNNING on the engine after its attempt: sent its final event again",
            run_id,
            extra={"event": "outcome_resent"},
        )
    log.warning(
        "run %s still read RUNNING on the engine %.0f s after its attempt ended; "
        "its execution timeout will end it",
        run_id,
        within,
        extra={"event": "outcome_unconfirmed"},
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


PROBE_EVERY = 1.0  # seconds between looks at the engine, for NEAR_OUTAGE seconds after a run ended
PROBE_TIMEOUT = 5.0  # a look not answered by then counts as failed
# seconds: a run that ended this long before a failed look, or after one until
# this long after the engine answered again, is confirmed. The SDK's send of a
# final event and the engine's handling of it take at most a few seconds, and
# the engine's token cache (5 s) can hide a database outage from one look.
NEAR_OUTAGE = 20.0
MAX_RECENT = 10_000  # ended runs kept for a failed look; more (over 500 runs/s) drops the oldest

#: a run's outcome to confirm: (its SDK context, the task's output, or the error it raised)
Outcome = tuple[Context, dict[str, Any] | None, BaseException | None]


class OutageWatch:
    """Confirms the ordinary runs that end near an outage of the engine.

    ``look(ctx)`` asks the engine about the run of ``ctx`` and raises
    ``TimeoutError``, ``grpc.RpcError`` or ``ConnectionError`` when it does not
    answer; ``resend(outcome)`` starts the confirmation of one run. The worker
    calls :meth:`ended` when an attempt ends. For ``near`` seconds after a run
    ended (and while the engine is down), the watch looks every ``every``
    seconds at the run that ended last: runs in flight cost nothing until they
    end (a long run or a durable sleep makes no calls).
    """

    def __init__(
        self,
        look: Callable[[Context], Awaitable[object]],
        resend: Callable[[Outcome], None],
        *,
        every: float = PROBE_EVERY,
        near: float = NEAR_OUTAGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._look, self._resend = look, resend
        self._every, self._near, self._clock = every, near, clock
        self._latest: Context | None = None
        self._recent: deque[tuple[float, Outcome]] = deque(maxlen=MAX_RECENT)
        self.down = False  # the last look failed
        self._near_until = float("-inf")  # runs ending before this are confirmed: the engine just came back
        self._task: asyncio.Task[None] | None = None

    def ended(self, outcome: Outcome | None) -> None:
        """The attempt of a run ended with ``outcome`` (None: cancelled; the engine made that end)."""
        if outcome is None:
            return
        self._latest = outcome[0]
        now = self._clock()
        if self.down or now < self._near_until:
            self._resend(outcome)
            return
        self._recent.append((now, outcome))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def look_once(self) -> None:
        """One look at the engine, and what follows from its answer."""
        ctx = self._latest
        if ctx is None:
            return
        try:
            await asyncio.wait_for(self._look(ctx), PROBE_TIMEOUT)
            answered = True
        except (TimeoutError, grpc.RpcError, ConnectionError) as exc:
            answered, failure = False, exc
        except Exception:  # not the engine's answer (a closed channel at exit): no news
            log.debug("a look at the engine failed on this side", exc_info=True)
            return
        now = self._clock()
        while self._recent and self._recent[0][0] < now - self._near:
            self._recent.popleft()
        if not answered:
            if not self.down:
                log.warning(
                    "the engine did not answer (%s): runs that ended in the last %.0f s, and those ending "
                    "until it answers again, get their outcome confirmed",
                    type(failure).__name__,
                    self._near,
                    extra={"event": "engine_unreachable"},
                )
            self.down = True
            while self._recent:
                self._resend(self._recent.popleft()[1])
            return
        if self.down:
            self.down = False
            self._near_until = now + self._near

    async def _watch(self) -> None:
        while self._recent or self.down:
            await asyncio.sleep(self._every)
            await self.look_once()


# what the engine answers while it, or its database, is down; any other answer
# (not found, say) came from a working engine
_OUTAGE_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,  # its token check reads the database
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.ABORTED,
}


async def look_at_engine(ctx: Context) -> None:
    """One core-side look at the run of ``ctx``; raises only on an outage."""
    try:
        await asyncio.to_thread(
            core_details_once, ctx._runs_client._admin_client, str(ctx.workflow_run_id), PROBE_TIMEOUT
        )
    except grpc.RpcError as exc:
        if grpc_code(exc) in _OUTAGE_CODES:
            raise


def _resend(outcome: Outcome) -> None:
    ctx, output, error = outcome
    confirm_later(ctx, final_event(str(ctx.step_run_id), output, error))


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OutageWatch] = weakref.WeakKeyDictionary()


def outage_watch() -> OutageWatch:
    """The watch of the running loop (a worker process runs one loop per SDK worker)."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = OutageWatch(look_at_engine, _resend)
    return watch
