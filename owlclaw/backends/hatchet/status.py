"""What the engine's rows say about a task: one pure function per kind of answer.

A run reaches owlclaw in two shapes:

* the *details* of one run (``runs.get``, for look-ups by id): the run's row
  plus its task's row, each with its own status;
* a *listing* row (``runs.list``, for ``list_tasks``): the run's summary,
  with one status and the task's retry count.

Both are first normalized into an :class:`EngineRun`, and
:func:`task_info` decides the state from it with one set of rules, so a
look-up and a listing of the same run agree. The one fact only the details
carry is the task row's own status (``task_status``); a listing row leaves it
None, and the rule that reads it (a FAILED run whose task is already on its
next attempt) then cannot fire. Given the same facts, both shapes decide the
same.

Nothing here does I/O: the task name (which may need a workflow look-up) and
the error text the engine keeps only on its gRPC side are found by the caller
and passed in; :func:`needs_details_error` says when the latter is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hatchet_sdk.clients.admin import RunStatus

from owlclaw.backends.hatchet.naming import TOMBSTONE
from owlclaw.backends.hatchet.wire import (
    DUE_KEY,
    ID_KEY,
    RESULT_KEY,
    STATES,
    TASK_KEY,
    due_of,
    error_text,
    held_until,
    is_non_retryable,
    payload_of,
    utc,
)
from owlclaw.scheduler.kit import describe_error, json_roundtrip, timeout_error
from owlclaw.scheduler.models import TaskInfo, TaskOptions, TaskState

__all__ = [
    "ENGINE_REQUEUE_ERROR",
    "ENGINE_REQUEUE_WINDOW",
    "OPEN_CHECK_AFTER",
    "EngineRun",
    "LocalRecord",
    "cancelled_info",
    "local_info",
    "needs_details_error",
    "schedule_info",
    "task_info",
    "tombstone_info",
    "with_id",
]

ENGINE_REQUEUE_ERROR = "Could not send task to worker"  # the dispatcher's message before it retries
#: A held run that ended this long before its due time ended in its hold (clocks may differ a little).
HOLD_MARGIN = timedelta(seconds=0.5)
ENGINE_REQUEUE_WINDOW = 120.0  # seconds such a failure reads QUEUED: the retries' backoff and a queue poll
#: A run the engine's read side has shown open (queued or running) this long is
#: checked on its core side, which can have ended it (docs/hatchet.md).
OPEN_CHECK_AFTER = timedelta(seconds=30)
_CORE_FINAL = {
    RunStatus.COMPLETED: TaskState.SUCCEEDED,
    RunStatus.FAILED: TaskState.FAILED,
    RunStatus.CANCELLED: TaskState.CANCELLED,
}


@dataclass(frozen=True)
class EngineRun:
    """One run, whichever row shape it was read from."""

    run_id: str  # the engine's workflow-run id
    task_name: str  # without the namespace prefix; TOMBSTONE for a tombstone
    status: TaskState  # the run row's status
    task_status: TaskState | None  # the task row's status: details only
    retry_count: int | None  # retries the engine counted; None when no task row was read
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime | None
    error: str | None  # the engine's serialized error, as stored
    output: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)
    input: Any = None
    core_final: bool = False  # the status was read on the engine's core side: final for good

    @property
    def task_id(self) -> str:
        """The id the caller holds: our schedule id when the run carries one."""
        return str(self.metadata.get(ID_KEY) or self.run_id)

    @classmethod
    def from_details(cls, details: Any, task_name: str) -> EngineRun:
        """From ``runs.get``: the run's row, and its (single) task's row if listed yet."""
        run = details.run
        tasks = list(details.tasks or [])
        task = tasks[0] if tasks else None
        return cls(
            run_id=str(run.metadata.id),
            task_name=task_name,
            status=STATES.get(run.status, TaskState.QUEUED),
            task_status=STATES.get(task.status) if task is not None else None,
            retry_count=int(task.retry_count or 0) if task is not None else None,
            started_at=utc(run.started_at),
            finished_at=utc(run.finished_at),
            created_at=utc(run.created_at),
            error=_details_error(run, task),
            output=run.output,
            metadata=dict(run.additional_metadata or {}),
            input=run.input,
        )

    @classmethod
    def from_listing(cls, row: Any, task_name: str) -> EngineRun:
        """From ``runs.list``: a run's summary (no separate task-row status)."""
        return cls(
            run_id=str(row.workflow_run_external_id),
            task_name=task_name,
            status=STATES.get(row.status, TaskState.QUEUED),
            task_status=None,
            retry_count=int(row.retry_count or 0),
            started_at=utc(row.started_at),
            finished_at=utc(row.finished_at),
            created_at=utc(row.created_at),
            error=row.error_message,
            output=row.output,
            metadata=dict(row.additional_metadata or {}),
            input=row.input,
        )

    def open_too_long(self, now: datetime) -> bool:
        """Shown queued or running on the read side for OPEN_CHECK_AFTER or more."""
        if self.status.is_final or self.task_name == TOMBSTONE:
            return False
        since = self.started_at or self.created_at
        return since is not None and now - since >= OPEN_CHECK_AFTER

    def with_core_outcome(self, details: Any) -> EngineRun:
        """This run as ended on the engine's core side (``runs.get_details``),
        when its read side still shows it open: that side can lose a run's
        final event for good. Its finish time is then unknown (None)."""
        state = _CORE_FINAL.get(details.status)
        if state is None or not details.done:  # done: no task of the run queued, running or evicted
            return self
        task = next(iter((details.task_runs or {}).values()), None)
        return replace(
            self,
            status=state,
            task_status=state,
            output=getattr(task, "output", None),
            error=getattr(task, "error", None) or self.error,
            finished_at=None,
            core_final=True,
        )


@dataclass
class LocalRecord:
    """What this process knows of a run or schedule it created."""

    task_name: str
    payload: dict[str, Any]
    created_at: datetime
    due: datetime | None  # schedules only
    schedule_id: str | None = None  # the engine's id of the schedule, to delete it without a look-up
    held: bool = False  # a held short delay: its id is its run's (triggers._hold)


def _details_error(run: Any, task: Any) -> str | None:
    """The error of a run's details. The run's row is read before its task's
    (docs/hatchet.md), so a FAILED task row carries the newer attempt's error."""
    if task is not None and task.error_message and STATES.get(task.status) is TaskState.FAILED:
        return str(task.error_message)
    return run.error_message or (task.error_message if task is not None else None)


def _engine_requeued(run: EngineRun, now: datetime) -> bool:
    """The engine's dispatcher could not hand the run to a worker (its stream
    was gone, as just after an engine or database restart). The engine records
    FAILED, then retries the dispatch itself (SERVER_MAX_INTERNAL_RETRY_COUNT
    times). It reads FAILED until a worker takes the run; past
    ENGINE_REQUEUE_WINDOW the failure is taken as final (docs/hatchet.md)."""
    if not run.error or ENGINE_REQUEUE_ERROR not in run.error:
        return False
    failed_at = run.finished_at
    return failed_at is None or now - failed_at < timedelta(seconds=ENGINE_REQUEUE_WINDOW)


def _will_retry(run: EngineRun, options: TaskOptions | None) -> bool:
    """A FAILED run whose task has retries left and whose error may be retried:
    the engine reports FAILED for a moment before the retry is queued."""
    if options is None or (run.retry_count or 0) >= options.retries:
        return False  # a process that does not know the task reports what the engine says
    return not is_non_retryable(run.error)


def _decide(run: EngineRun, options: TaskOptions | None, now: datetime) -> tuple[TaskState, bool]:
    """The state to report, and whether the run is between a failure and its retry."""
    if run.status is not TaskState.FAILED or run.core_final:
        return run.status, False
    if run.task_status is TaskState.SUCCEEDED:
        # the run's row, read first, lags a later attempt that succeeded: not
        # over until the run's row has it, with its output
        return TaskState.RUNNING, False
    if run.task_status is not None and run.task_status is not TaskState.FAILED:
        # the run's row lags its task's: the task is on its next attempt (or
        # cancelled) already, and retry_count counts it
        return run.task_status, False
    if _engine_requeued(run, now) or _will_retry(run, options):
        return TaskState.QUEUED, True
    return TaskState.FAILED, False


def _attempts(run: EngineRun, state: TaskState, retrying: bool) -> int:
    """Attempts begun. The engine counts retries, and clears ``started_at``
    while a retry waits in the queue. Its read side can also record an
    attempt's failure before its start, leaving ``started_at`` unset: an error
    from the task's code means the attempt began."""
    if run.retry_count is None:
        return 0
    if state is TaskState.QUEUED and not retrying:
        return run.retry_count  # the next attempt has not started
    failed_in_code = (
        state is TaskState.FAILED and bool(run.error) and ENGINE_REQUEUE_ERROR not in (run.error or "")
    )
    return run.retry_count + 1 if run.started_at is not None or failed_in_code else run.retry_count


def needs_details_error(run: EngineRun, options: TaskOptions | None, now: datetime) -> bool:
    """Whether the run failed with no error on its rows although it started:
    the engine keeps a timeout's message only on its gRPC side, which the
    caller then reads and passes to :func:`task_info` as ``details_error``."""
    if run.task_name == TOMBSTONE:
        return False
    state, retrying = _decide(run, options, now)
    return (
        (state is TaskState.FAILED or retrying) and not error_text(run.error) and run.started_at is not None
    )


def _failure(run: EngineRun, options: TaskOptions | None, details_error: str | None) -> str:
    text = error_text(run.error)
    if text:
        return text
    if run.started_at is None:
        return (
            "TimeoutError: no worker started the run within the schedule timeout "
            "(scheduler.hatchet.schedule_timeout_seconds); keep a worker running for "
            f"task {run.task_name!r}"
        )
    if details_error:
        if "timeout" in details_error.lower() and not details_error.startswith("TimeoutError"):
            return f"TimeoutError: {details_error}"
        return details_error
    if options is not None and options.timeout is not None:
        return describe_error(timeout_error(options))
    return "failed (the engine recorded no error message)"


def task_info(
    run: EngineRun, options: TaskOptions | None, now: datetime, *, details_error: str | None = None
) -> TaskInfo:
    """The task as owlclaw reports it.

    * The run row's status decides, mapped one to one, except:
    * FAILED while the task row (read after it) says otherwise: the task's
      state, except a task row COMPLETED reads RUNNING until the run row
      has the output (the run row lags; a later attempt is under way or over);
    * FAILED with "Could not send task to worker", less than
      ENGINE_REQUEUE_WINDOW ago: QUEUED (the engine retries the hand-over);
    * FAILED with retries left (``options`` known, the error retryable):
      QUEUED, with the attempt's error;
    * CANCELLED stays CANCELLED, with no result, even if the code finished in
      the SDK's cancel grace and the task row says COMPLETED;
    * a result only when SUCCEEDED, a finish time only when final;
    * a held short delay (``HOLD_KEY``) that is not final reads SCHEDULED until
      its due time (its worker holds it until then), and its attempt's start
      is its due time at the earliest.
    """
    if run.task_name == TOMBSTONE:
        return tombstone_info(run.metadata, run.input, run.created_at)
    hold = held_until(run.metadata)
    if hold is not None:
        if hold > now and not run.status.is_final:
            return schedule_info(run.task_id, run.task_name, payload_of(run.input), hold)
        if run.finished_at is not None and run.finished_at < hold - HOLD_MARGIN:
            run = replace(run, started_at=None)  # it ended while held: the task never ran
        elif run.started_at is not None and run.started_at < hold:
            run = replace(run, started_at=hold)
    state, retrying = _decide(run, options, now)
    output = run.output if isinstance(run.output, dict) else {}
    error: str | None = None
    if state is TaskState.FAILED or retrying:
        error = _failure(run, options, details_error)
    elif state is TaskState.CANCELLED:
        error = "cancelled"
    due = run.metadata.get(DUE_KEY)
    started, finished = run.started_at, run.finished_at if state.is_final else None
    if started is not None and finished is not None and started > finished:
        started = finished  # the read side can record a start after the end (docs/hatchet.md)
    return TaskInfo(
        id=run.task_id,
        task_name=run.task_name,
        state=state,
        payload=json_roundtrip(payload_of(run.input), "payload"),
        scheduled_at=due_of(run.metadata) if isinstance(due, str) else run.created_at,
        started_at=started,
        finished_at=finished,
        attempts=_attempts(run, state, retrying),
        result=json_roundtrip(output.get(RESULT_KEY), "result") if state is TaskState.SUCCEEDED else None,
        error=error,
    )


def tombstone_info(metadata: Mapping[str, Any], raw_input: Any, created_at: datetime | None) -> TaskInfo:
    """A cancelled schedule, from the tombstone run that records it."""
    return TaskInfo(
        id=str(metadata.get(ID_KEY)),
        task_name=str(metadata.get(TASK_KEY)),
        state=TaskState.CANCELLED,
        payload=json_roundtrip(payload_of(raw_input), "payload"),
        scheduled_at=due_of(metadata),
        finished_at=utc(created_at),
        error="cancelled",
    )


def schedule_info(task_id: str, task_name: str, raw_input: Any, trigger_at: datetime | None) -> TaskInfo:
    """A schedule that has not fired yet."""
    return TaskInfo(
        id=task_id,
        task_name=task_name,
        state=TaskState.SCHEDULED,
        payload=json_roundtrip(dict(raw_input or {}), "payload"),
        scheduled_at=utc(trigger_at),
    )


def local_info(task_id: str, local: LocalRecord, now: datetime) -> TaskInfo:
    """A run or schedule created here that the engine's read side does not show yet."""
    pending = local.due is not None and local.due > now
    return TaskInfo(
        id=task_id,
        task_name=local.task_name,
        state=TaskState.SCHEDULED if pending else TaskState.QUEUED,
        payload=json_roundtrip(local.payload, "payload"),
        scheduled_at=local.due or local.created_at,
    )


def cancelled_info(schedule: TaskInfo, now: datetime) -> TaskInfo:
    """A schedule this process cancelled."""
    return TaskInfo(
        id=schedule.id,
        task_name=schedule.task_name,
        state=TaskState.CANCELLED,
        payload=schedule.payload,
        scheduled_at=schedule.scheduled_at,
        finished_at=now,
        error="cancelled",
    )


def with_id(info: TaskInfo, task_id: str) -> TaskInfo:
    """The same answer under the id the caller looked it up by."""
    return info if info.id == task_id else replace(info, id=task_id)
