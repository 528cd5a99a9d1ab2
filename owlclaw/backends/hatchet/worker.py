"""The worker side: owlclaw tasks defined for the Hatchet SDK, and one attempt's execution.

Every owlclaw task becomes a standalone Hatchet task (or durable task) whose
function is :func:`execute`: it runs one attempt with the kit's
``run_attempt`` (timeout, retry decision, ``on_failure`` after the last
attempt) and tells the SDK what came of it. The SDK's function is always
async; a sync task function runs on the process's ``sync_executor``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from hatchet_sdk import Context, DurableContext, Hatchet, Priority
from hatchet_sdk.exceptions import NonRetryableException
from hatchet_sdk.types.concurrency import ConcurrencyExpression, ConcurrencyLimitStrategy
from hatchet_sdk.utils.typing import LogLevel
from hatchet_sdk.worker.runner.utils.capture_logs import LogRecord

from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.confirm import Outcome, confirm_later, final_event, outage_watch
from owlclaw.backends.hatchet.convert import CRON_NAME_KEY, tick_covered
from owlclaw.backends.hatchet.layout import Layout, plan
from owlclaw.backends.hatchet.naming import LINK
from owlclaw.backends.hatchet.rows import Begin
from owlclaw.backends.hatchet.shutdown import bound_shutdown
from owlclaw.backends.hatchet.wire import (
    CANCEL_MARK,
    HOLD_SECONDS,
    ID_KEY,
    RESULT_KEY,
    SCHEDULE_KEY,
    held_until,
    lateness,
)
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.kit import SyncExecutor, make_context, run_attempt
from owlclaw.scheduler.limits import MAX_BACKOFF_SECONDS
from owlclaw.scheduler.models import TaskOptions

if TYPE_CHECKING:
    from owlclaw.backends.hatchet.chain import Chain

__all__ = [
    "DEFAULT_TIMEOUT",
    "DUPLICATE_KEY",
    "TIMEOUT_GRACE",
    "backoff",
    "concurrency",
    "define",
    "define_link",
    "execute",
    "keep_own_logs_local",
    "serve",
    "sync_executor",
]

log = logging.getLogger("owlclaw.scheduler.hatchet")

TIMEOUT_GRACE = 5  # seconds the engine waits past a task's own timeout before it steps in
DEFAULT_TIMEOUT = timedelta(hours=24)  # Hatchet's default is 60 s; owlclaw's is none
SHUTDOWN_GRACE = 10.0  # seconds the worker waits at exit for sync task threads, then leaves them

#: the result of a duplicate run of a schedule's occurrence (its user code did not run)
DUPLICATE_KEY = "owlclaw_duplicate"

_sync: SyncExecutor | None = None  # this worker process's threads for sync tasks


def sync_executor(slots: int) -> SyncExecutor:
    """This process's threads for sync task functions, one per worker slot:
    made by ``serve`` (or at the first sync attempt in a process that did
    not call it) and shut down when the worker stops."""
    global _sync
    if _sync is None:
        _sync = SyncExecutor(slots, "owlclaw-hatchet-sync")
    return _sync


class _FlagEvent(threading.Event):
    """A ``threading.Event`` that reads the SDK context's cancellation flag."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self._ctx = ctx

    def is_set(self) -> bool:
        return bool(self._ctx.is_cancelled) or super().is_set()


def backoff(options: TaskOptions) -> dict[str, Any]:
    """Hatchet waits ``factor ** retry`` seconds, capped at a whole ``max``.
    A fixed wait D (whole seconds >= 1) is factor=D, max=D."""
    if options.backoff is None or options.backoff_base is None:
        return {"backoff_factor": None, "backoff_max_seconds": None}
    if options.backoff == "fixed":
        seconds = int(options.backoff_base)
        return {"backoff_factor": float(seconds), "backoff_max_seconds": seconds}
    # without a cap the wait stops growing at MAX_BACKOFF_SECONDS, as TaskOptions.retry_delay says
    cap = options.backoff_max_seconds if options.backoff_max_seconds is not None else MAX_BACKOFF_SECONDS
    return {"backoff_factor": options.backoff_base, "backoff_max_seconds": max(1, math.ceil(cap))}


def concurrency(options: TaskOptions) -> ConcurrencyExpression | None:
    """``concurrency=N``: N runs at once per group; the group is the payload
    field ``concurrency_key`` (runs without it share one group)."""
    if options.concurrency is None:
        return None
    key = options.concurrency_key
    expression = f"has(input.{key}) ? string(input.{key}) : ''" if key else "'all'"
    return ConcurrencyExpression(
        expression=expression,
        max_runs=options.concurrency,
        limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    )


def define(client: Hatchet, options: TaskOptions, scheduler: Any, schedule_timeout: float) -> Any:
    """The SDK's standalone task for ``options``; its runs see ``scheduler`` as ``ctx.scheduler``."""

    async def owlclaw_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return await execute(options, payload, ctx, scheduler)

    kwargs: dict[str, Any] = {
        "name": options.name,
        "input_validator": dict[str, Any],
        "retries": options.retries,
        "execution_timeout": (  # a held short delay waits up to HOLD_SECONDS first
            timedelta(seconds=math.ceil(options.timeout) + TIMEOUT_GRACE + math.ceil(HOLD_SECONDS))
            if options.timeout is not None
            else DEFAULT_TIMEOUT
        ),
        "default_priority": Priority(options.priority),
        # the SDK's 5 minutes would fail runs queued through a longer worker outage
        "schedule_timeout": timedelta(seconds=schedule_timeout),
        **backoff(options),
        "concurrency": concurrency(options),
    }
    # the SDK's overloads cannot be matched through **kwargs
    decorate: Any = client.durable_task(**kwargs) if options.durable else client.task(**kwargs)
    return decorate(owlclaw_task)


LINK_RETRIES = 10  # a link whose book call failed (the state database down) runs again
LINK_TIMEOUT = timedelta(seconds=120)  # one link: a transaction, a few engine calls


def define_link(client: Hatchet, chain_of: Callable[[], Chain | None], schedule_timeout: float) -> Any:
    """The internal link workflow (served by every worker of the namespace);
    ``chain_of`` gives the scheduler's chain when a link runs."""

    async def owlclaw_schedule(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        chain = chain_of()
        if chain is None:
            raise RuntimeError(
                "a schedule link reached a worker without schedules: set scheduler.hatchet."
                "state_database_url (OWLCLAW_STATE_DATABASE_URL) on every worker of this namespace"
            )
        return await chain.on_link(payload)

    decorate: Any = client.task(
        name=LINK,
        input_validator=dict[str, Any],
        retries=LINK_RETRIES,
        backoff_factor=2.0,
        backoff_max_seconds=30,
        execution_timeout=LINK_TIMEOUT,
        schedule_timeout=timedelta(seconds=schedule_timeout),
    )
    return decorate(owlclaw_schedule)


async def never_runs(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:  # pragma: no cover
    """The tombstone workflow's function: no worker serves that workflow."""
    raise RuntimeError("the owlclaw tombstone workflow is never served by a worker")


async def execute(options: TaskOptions, payload: Any, ctx: Context, scheduler: Any) -> dict[str, Any]:
    """One attempt (``_attempt``); its outcome is then confirmed to the engine
    where the engine may have lost it (``confirm.py``): always for a held short
    delay, for another run when it ended near an outage its worker saw. A
    cancel is not confirmed: the engine made it."""
    held = held_until(ctx.additional_metadata or {}) is not None
    watch = None if held or not isinstance(ctx, Context) else outage_watch()  # not for test doubles
    if not held and watch is None:
        return await _attempt(options, payload, ctx, scheduler)
    outcome: Outcome | None = None
    try:
        output = await _attempt(options, payload, ctx, scheduler)
        outcome = (ctx, output, None)
        return output
    except Exception as exc:
        outcome = (ctx, None, exc)
        raise
    finally:
        if watch is not None:
            watch.ended(outcome)
        elif outcome is not None:
            confirm_later(ctx, final_event(str(ctx.step_run_id), outcome[1], outcome[2]))


async def _attempt(options: TaskOptions, payload: Any, ctx: Context, scheduler: Any) -> dict[str, Any]:
    """One attempt of a task, in the worker: ``run_attempt`` runs it (the
    task's timeout is kept here, so a timed-out attempt is an ordinary
    failure; the engine's execution timeout is only a backstop a few seconds
    later) and its outcome is told to the SDK. A final failure's
    ``on_failure`` has returned before this raises, so the engine reports a
    run FAILED only once its callback is done. An engine cancellation
    propagates as ``CancelledError``."""
    metadata = ctx.additional_metadata or {}
    task_id = str(metadata.get(ID_KEY) or ctx.workflow_run_id)
    attempt = int(ctx.attempt_number)
    durable_sleep = None
    if isinstance(ctx, DurableContext):
        durable_ctx = ctx

        async def durable_sleep(seconds: float) -> None:
            await durable_ctx.aio_sleep_for(timedelta(seconds=max(seconds, 0.0)))

    occurrence = None
    if SCHEDULE_KEY in metadata:  # a run a schedule fired: once per occurrence (chain.py)
        chain = getattr(scheduler, "schedule_chain", None)
        if chain is None:
            raise NonRetryableException(
                "a schedule's run reached a worker without schedules: set scheduler.hatchet."
                "state_database_url (OWLCLAW_STATE_DATABASE_URL) on every worker of this namespace"
            )
        schedule_id, nominal, occurrence_id, verdict = await chain.begin(metadata, str(ctx.workflow_run_id))
        if verdict is Begin.SUPERSEDED:
            await _cancel_superseded(ctx, occurrence_id, schedule_id)
            return {RESULT_KEY: None}
        if verdict is Begin.DUPLICATE:
            log.info(
                "schedule occurrence already taken by another run; run %s ends without running the task "
                "occurrence=%s",
                ctx.workflow_run_id,
                occurrence_id,
                extra={"event": "occurrence_duplicate", "schedule_id": schedule_id},
            )
            return {RESULT_KEY: None, DUPLICATE_KEY: occurrence_id}
        occurrence = (chain, schedule_id, nominal, occurrence_id)
    elif CRON_NAME_KEY in metadata and (chain := getattr(scheduler, "schedule_chain", None)) is not None:
        # a tick of an engine cron made a schedule (convert.py): the schedule fires it
        if (covered := await tick_covered(chain, options.name, metadata)) is not None:
            log.info(
                "cron run %s ends without running the task: its cron is now a schedule, which decides "
                "occurrence=%s",
                ctx.workflow_run_id,
                covered,
                extra={"event": "cron_tick_superseded"},
            )
            return {RESULT_KEY: None, DUPLICATE_KEY: covered}
    task_ctx = make_context(
        options,
        task_id=task_id,
        attempt=attempt,
        scheduler=scheduler,
        durable_sleep=durable_sleep,
        cancel_event=_FlagEvent(ctx),
        scheduled_for=occurrence[2] if occurrence else None,
        occurrence_id=occurrence[3] if occurrence else None,
    )
    returned = False
    if not isinstance(ctx, DurableContext):  # a durable run's eviction sets the same flag
        _mark_cancel_while_running(ctx, lambda: returned)
    try:
        if (hold := held_until(metadata)) is not None:
            await _hold(hold)
        outcome = await run_attempt(
            options,
            dict(payload or {}),
            task_ctx,
            trace=metadata,
            lateness=lateness(metadata, attempt),
            executor=sync_executor(int(getattr(getattr(scheduler, "config", None), "slots", 100))),
        )
    except asyncio.CancelledError:
        if occurrence is not None:  # cancelled: final
            occurrence[0].ended_later(occurrence[1], occurrence[2])
        raise
    finally:
        returned = True
    if occurrence is not None and outcome.final:  # an overlap policy may release a buffered occurrence
        await occurrence[0].ended(occurrence[1], occurrence[2])
    if outcome.succeeded:
        return {RESULT_KEY: outcome.result}
    assert outcome.exception is not None and outcome.error is not None
    if not outcome.retryable and attempt <= options.retries:
        # retries are left but this error may not use them: the SDK's wrapper
        # stops the engine's retries (its stored text is "Type: message")
        raise NonRetryableException(outcome.error) from outcome.exception
    if outcome.timed_out:
        raise outcome.exception from None
    raise outcome.exception  # the engine retries, or records the final failure


async def _hold(due: datetime) -> None:
    """A short delay queued early (``triggers._hold``): wait here until it is
    due. A cancel meanwhile ends the run CANCELLED, its task never called."""
    wait = (due - utc_now()).total_seconds()
    if wait > 0:
        await asyncio.sleep(min(wait, HOLD_SECONDS))


class _OwlclawLinesStayLocal(logging.Filter):
    """Keeps owlclaw's own records (``owlclaw.*``) out of the SDK's forwarding handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "owlclaw" or record.name.startswith("owlclaw."))


def keep_own_logs_local(logger: logging.Logger) -> None:
    """The SDK sends every record a run logs through ``logger`` to the engine
    (an RPC and a row each), with a forwarding handler that copies the filters
    of ``logger``'s handlers when it is made. A do-nothing handler carrying
    our filter is the way to put it on that forwarder alone."""
    if any(isinstance(f, _OwlclawLinesStayLocal) for h in logger.handlers for f in h.filters):
        return
    holder = logging.NullHandler()
    holder.addFilter(_OwlclawLinesStayLocal())
    logger.addHandler(holder)


async def _cancel_superseded(ctx: Context, occurrence_id: str, schedule_id: str) -> None:
    """Overlap ``cancel_previous``: a later occurrence fired before this run
    began, and the cancel sent for it may have reached the engine before the
    run did. The run cancels itself (the SDK then drops its result), so it ends
    CANCELLED without running the task, as its cancel meant."""
    log.info(
        "schedule occurrence superseded before its run began (overlap cancel_previous); run %s cancels "
        "itself without running the task occurrence=%s",
        ctx.workflow_run_id,
        occurrence_id,
        extra={"event": "occurrence_superseded", "schedule_id": schedule_id},
    )
    try:
        await ctx.aio_cancel()
    except Exception as exc:  # noqa: BLE001 - the task did not run either way
        log.warning("superseded run %s not cancelled, it ends without running: %s", ctx.workflow_run_id, exc)


def _mark_cancel_while_running(ctx: Context, returned: Any) -> None:
    """When the engine's cancel reaches this run before ``execute`` returned,
    the SDK drops the result (its cancellation flag is set first, in this
    loop), so the run ends CANCELLED: say so in the run's log (CANCEL_MARK),
    for ``cancel_task`` to answer at once. Only cancelled runs pay the RPC."""
    original = getattr(ctx, "_set_cancellation_flag", None)
    if original is None:  # not the SDK's Context (a test double)
        return

    def flag_set() -> None:
        original()
        if not returned():
            ctx._log_sender.publish(
                LogRecord(
                    message=CANCEL_MARK,
                    step_run_id=ctx.step_run_id,
                    level=LogLevel.INFO,
                    task_retry_count=ctx.retry_count,
                )
            )

    ctx._set_cancellation_flag = flag_set  # type: ignore[method-assign]


def _on_shutdown_signal(callback: Callable[[], None]) -> None:
    """Call ``callback`` first when SIGTERM or SIGINT arrives (then the handler installed before)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        inner: Any = signal.getsignal(sig)
        if not callable(inner):
            continue

        def handler(signum: int, frame: FrameType | None, inner: Any = inner) -> None:
            callback()
            inner(signum, frame)

        signal.signal(sig, handler)


def serve(
    client: Hatchet,
    tasks: Mapping[str, TaskOptions],
    standalones: Mapping[str, Any],
    config: HatchetConfig,
    host: str,
    internal: Sequence[Any] = (),
    sweeper: Any = None,
) -> None:
    """Run the workers for every registered task until SIGTERM/SIGINT (the SDK
    drains the runs in flight, then exits the process with status 0; runs
    still going after ``shutdown_grace_seconds`` make it exit with status 1).
    Ordinary and durable tasks get SDK workers of their own (``layout``).
    Sync task functions run on ``sync_executor(config.slots)``; at exit its
    threads get ``SHUTDOWN_GRACE`` seconds, then are left behind (daemons).
    ``internal`` are owlclaw's own workflows to serve (the schedule link);
    ``sweeper`` (``chain.Sweeper``) runs beside the workers while they do."""
    global _sync
    workflows = plan(tasks, standalones, internal)
    layout = Layout(client, config.effective_worker_name, config.slots, config.slots, workflows)
    bound_shutdown(config.shutdown_grace_seconds)
    if sweeper is not None:
        _on_shutdown_signal(sweeper.chain.draining.set)
    if not config.ship_owlclaw_logs:
        keep_own_logs_local(client._client.log_interceptor)
    log.info(
        "hatchet worker %s running %d tasks on %s (namespace %s, %d slots); SIGTERM drains and stops",
        " + ".join(layout.names),
        len(tasks),
        host,
        config.namespace,
        config.slots,
    )
    sync_executor(config.slots)
    try:
        layout.start_side()
        if sweeper is not None:
            sweeper.start()
        layout.main.start()
    finally:
        if sweeper is not None:
            sweeper.stop()
        side_ok = layout.stop_side(config.shutdown_grace_seconds + SHUTDOWN_GRACE)
        executor, _sync = _sync, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True, timeout=SHUTDOWN_GRACE)
        if not side_ok:
            raise SystemExit(1)  # durable runs were cut short: not a clean drain
