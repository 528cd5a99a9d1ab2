"""How the Hatchet backend reads a run's state from what the engine reports.

The engine's read side is updated in steps, so a poll can catch it half-way.
These rows are shaped like the SDK's, copied from states seen on hatchet-lite
v0.105.0; the integration suite checks the same behaviour end to end. A run
is read in two shapes (the details of one run, a listing row); both go
through ``owlclaw.backends.hatchet.status`` and must give the same answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.exceptions import TaskRunError

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.status import EngineRun, task_info
from owlclaw.backends.hatchet.wire import DUE_KEY, HOLD_KEY, HOLD_SECONDS, RESULT_KEY
from owlclaw.backends.memory.mimic import HOLD_SECONDS as MIMIC_HOLD_SECONDS
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.testing import register_conformance_tasks

STARTED = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def scheduler() -> HatchetScheduler:
    config = HatchetConfig.model_validate({"mode": "lite", "api_token": "t", "host_port": "127.0.0.1:1"})
    scheduler = HatchetScheduler(config)
    register_conformance_tasks(scheduler)  # conf_exponential_backoff: retries=2
    return scheduler


def _details(run_status: V1TaskStatus, task_status: V1TaskStatus, retry_count: int, attempt: int) -> Any:
    error = TaskRunError(
        f"planned failure on attempt {attempt}", "RuntimeError", "Traceback ...", "run-1"
    ).serialize(include_metadata=True)
    task = SimpleNamespace(
        workflow_name="owlclaw_conf_exponential_backoff",
        status=task_status,
        retry_count=retry_count,
        error_message=error,
    )
    run = SimpleNamespace(
        status=run_status,
        additional_metadata={},
        metadata=SimpleNamespace(id="run-1"),
        workflow_id="wf-1",
        started_at=STARTED if task_status is not V1TaskStatus.QUEUED else None,
        finished_at=STARTED if run_status in (V1TaskStatus.COMPLETED, V1TaskStatus.CANCELLED) else None,
        created_at=STARTED,
        error_message=error if V1TaskStatus.FAILED in (run_status, task_status) else None,
        output={RESULT_KEY: "done"} if run_status is V1TaskStatus.COMPLETED else None,
        input={"tag": "x"},
    )
    return SimpleNamespace(run=run, tasks=[task])


def _name(workflow_name: str) -> str:
    return workflow_name.removeprefix("owlclaw_")


def _read(scheduler: HatchetScheduler, details: Any, now: datetime | None = None) -> TaskInfo:
    """What get_task_status reports for these details (no engine: the name is on the task row)."""
    name = _name(details.tasks[0].workflow_name)
    run = EngineRun.from_details(details, name)
    return task_info(run, scheduler.tasks.get(name), now or datetime.now(UTC))


def _listing_row(details: Any) -> Any:
    """The same run as ``runs.list`` returns it: one summary row, no separate task status."""
    run, task = details.run, details.tasks[0]
    return SimpleNamespace(
        workflow_run_external_id=run.metadata.id,
        workflow_name=task.workflow_name,
        status=run.status,
        retry_count=task.retry_count,
        started_at=run.started_at,
        finished_at=run.finished_at,
        created_at=run.created_at,
        error_message=run.error_message or task.error_message,
        output=run.output,
        additional_metadata=run.additional_metadata,
        input=run.input,
    )


def _read_listed(scheduler: HatchetScheduler, row: Any, now: datetime) -> TaskInfo:
    """What list_tasks reports for this row."""
    name = _name(row.workflow_name)
    return task_info(EngineRun.from_listing(row, name), scheduler.tasks.get(name), now)


async def test_a_run_whose_status_lags_its_retry_is_queued_not_failed(scheduler: HatchetScheduler) -> None:
    # attempt 2 of 3 failed; the task row already counts the retry, the run row still says FAILED
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.QUEUED, retry_count=2, attempt=2)
    info = _read(scheduler, details)
    assert (info.state, info.attempts) == (TaskState.QUEUED, 2)


async def test_the_moment_between_a_failure_and_its_retry_is_queued(scheduler: HatchetScheduler) -> None:
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=1, attempt=2)
    info = _read(scheduler, details)
    assert (info.state, info.attempts) == (TaskState.QUEUED, 2)
    assert info.error == "RuntimeError: planned failure on attempt 2"


async def test_the_last_attempt_failing_is_failed(scheduler: HatchetScheduler) -> None:
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=2, attempt=3)
    info = _read(scheduler, details)
    assert (info.state, info.attempts) == (TaskState.FAILED, 3)
    assert info.error == "RuntimeError: planned failure on attempt 3"


async def test_the_run_row_decides_when_a_run_is_over(scheduler: HatchetScheduler) -> None:
    # the task row says COMPLETED before the run row has its output and finish time
    details = _details(V1TaskStatus.RUNNING, V1TaskStatus.COMPLETED, retry_count=2, attempt=3)
    info = _read(scheduler, details)
    assert (info.state, info.attempts) == (TaskState.RUNNING, 3)


async def test_a_cancelled_run_stays_cancelled_when_its_code_finished_in_the_grace(
    scheduler: HatchetScheduler,
) -> None:
    # the worker reported the result after the cancel; the engine's task row prefers COMPLETED
    details = _details(V1TaskStatus.CANCELLED, V1TaskStatus.COMPLETED, retry_count=0, attempt=1)
    info = _read(scheduler, details)
    assert (info.state, info.result, info.error) == (TaskState.CANCELLED, None, "cancelled")


def _run_read_before_the_last_attempt(task_status: V1TaskStatus) -> Any:
    # runs.get reads the run's row, then its task's: attempt 2's failure on the
    # first, attempt 3 (the last) already over on the second
    details = _details(V1TaskStatus.FAILED, task_status, retry_count=2, attempt=3)
    details.run.error_message = _details(V1TaskStatus.FAILED, task_status, 1, attempt=2).run.error_message
    if task_status is not V1TaskStatus.FAILED:
        details.tasks[0].error_message = None
    return details


async def test_a_last_attempt_that_succeeded_after_the_run_row_was_read_is_not_failed(
    scheduler: HatchetScheduler,
) -> None:
    info = _read(scheduler, _run_read_before_the_last_attempt(V1TaskStatus.COMPLETED))
    assert (info.state, info.attempts, info.error) == (TaskState.RUNNING, 3, None)


async def test_a_last_attempt_that_failed_after_the_run_row_was_read_gives_its_own_error(
    scheduler: HatchetScheduler,
) -> None:
    info = _read(scheduler, _run_read_before_the_last_attempt(V1TaskStatus.FAILED))
    assert (info.state, info.attempts) == (TaskState.FAILED, 3)
    assert info.error == "RuntimeError: planned failure on attempt 3"


async def test_a_run_cancelled_after_its_row_was_read_failed_is_cancelled(
    scheduler: HatchetScheduler,
) -> None:
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.CANCELLED, retry_count=1, attempt=2)
    info = _read(scheduler, details)
    assert (info.state, info.error) == (TaskState.CANCELLED, "cancelled")


def _undelivered(failed_at: datetime) -> Any:
    # the dispatcher found no stream for the worker: FAILED on the read side, retried inside the engine
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=0, attempt=1)
    message = "Could not send task to worker. This likely means that too many slots have been configured"
    details.run.error_message = details.tasks[0].error_message = message
    details.run.started_at, details.run.finished_at = None, failed_at
    details.tasks[0].workflow_name = "owlclaw_conf_echo"  # no retries of its own
    return details


async def test_a_run_the_engine_could_not_deliver_is_queued_while_the_engine_retries(
    scheduler: HatchetScheduler,
) -> None:
    info = _read(scheduler, _undelivered(datetime.now(UTC)))
    assert (info.state, info.attempts, info.finished_at) == (TaskState.QUEUED, 0, None)
    assert info.error is not None and "Could not send task to worker" in info.error


async def test_a_run_the_engine_gave_up_delivering_is_failed(scheduler: HatchetScheduler) -> None:
    info = _read(scheduler, _undelivered(datetime.now(UTC) - timedelta(minutes=5)))
    assert info.state is TaskState.FAILED


async def test_a_failure_read_before_its_start_still_counts_the_attempt(scheduler: HatchetScheduler) -> None:
    # the read side applied attempt 3's failure before its start: started_at is still unset
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=2, attempt=3)
    details.run.started_at = datetime(1, 1, 1, tzinfo=UTC)  # the engine's "never"
    info = _read(scheduler, details)
    assert (info.state, info.attempts) == (TaskState.FAILED, 3)


def _cancelled_in_grace() -> Any:
    details = _details(V1TaskStatus.CANCELLED, V1TaskStatus.COMPLETED, retry_count=0, attempt=1)
    details.run.output = {RESULT_KEY: "done"}  # the code finished within the SDK's cancel grace
    return details


SAME_RUN = {
    "queued": lambda: _details(V1TaskStatus.QUEUED, V1TaskStatus.QUEUED, retry_count=0, attempt=1),
    "running": lambda: _details(V1TaskStatus.RUNNING, V1TaskStatus.RUNNING, retry_count=0, attempt=1),
    "succeeded": lambda: _details(V1TaskStatus.COMPLETED, V1TaskStatus.COMPLETED, retry_count=0, attempt=1),
    "failed-final": lambda: _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=2, attempt=3),
    "failed-then-retrying": lambda: _details(
        V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=1, attempt=2
    ),
    "cancelled": lambda: _details(V1TaskStatus.CANCELLED, V1TaskStatus.CANCELLED, retry_count=0, attempt=1),
    "cancelled-in-grace": _cancelled_in_grace,
    "engine-requeue": lambda: _undelivered(datetime.now(UTC)),
    "engine-requeue-given-up": lambda: _undelivered(datetime.now(UTC) - timedelta(minutes=5)),
}
EXPECTED = {
    "queued": (TaskState.QUEUED, 0, None, None),
    "running": (TaskState.RUNNING, 1, None, None),
    "succeeded": (TaskState.SUCCEEDED, 1, "done", None),
    "failed-final": (TaskState.FAILED, 3, None, "RuntimeError: planned failure on attempt 3"),
    "failed-then-retrying": (TaskState.QUEUED, 2, None, "RuntimeError: planned failure on attempt 2"),
    "cancelled": (TaskState.CANCELLED, 1, None, "cancelled"),
    "cancelled-in-grace": (TaskState.CANCELLED, 1, None, "cancelled"),
}


@pytest.mark.parametrize("case", sorted(SAME_RUN))
def test_a_look_up_and_a_listing_of_the_same_run_agree(scheduler: HatchetScheduler, case: str) -> None:
    details = SAME_RUN[case]()
    now = datetime.now(UTC)
    looked_up = _read(scheduler, details, now)
    listed = _read_listed(scheduler, _listing_row(details), now)
    assert looked_up == listed
    if case in EXPECTED:
        assert (listed.state, listed.attempts, listed.result, listed.error) == EXPECTED[case]
    if case.startswith("engine-requeue"):
        assert listed.error is not None and "Could not send task to worker" in listed.error
        assert listed.state is (TaskState.FAILED if case.endswith("given-up") else TaskState.QUEUED)


def test_a_listing_row_carries_no_task_status_so_only_a_look_up_sees_the_lag(
    scheduler: HatchetScheduler,
) -> None:
    # the run row says FAILED while the task row already waits for the next attempt; a listing
    # row has no task row, and with the retry counted it is the last attempt's failure
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.QUEUED, retry_count=2, attempt=2)
    now = datetime.now(UTC)
    assert _read(scheduler, details, now).state is TaskState.QUEUED
    assert _read_listed(scheduler, _listing_row(details), now).state is TaskState.FAILED


def test_a_failure_without_a_message_reads_the_same_in_both_shapes(scheduler: HatchetScheduler) -> None:
    # started, FAILED, no error on the rows: the caller reads the gRPC-side error and passes it in
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=2, attempt=3)
    details.run.error_message = details.tasks[0].error_message = None
    now = datetime.now(UTC)
    options = scheduler.tasks["conf_exponential_backoff"]
    run = EngineRun.from_details(details, "conf_exponential_backoff")
    row = EngineRun.from_listing(_listing_row(details), "conf_exponential_backoff")
    for shape in (run, row):
        info = task_info(shape, options, now, details_error="task execution timeout exceeded")
        assert (info.state, info.error) == (TaskState.FAILED, "TimeoutError: task execution timeout exceeded")
        info = task_info(shape, options, now)
        assert info.error == "failed (the engine recorded no error message)"


def _held(status: TaskState, *, started: datetime | None, finished: datetime | None) -> EngineRun:
    """A short delay queued at STARTED, due 3 s later, held by its worker (triggers._hold)."""
    due = STARTED + timedelta(seconds=3)
    return EngineRun(
        run_id="run-h",
        task_name="conf_echo",
        status=status,
        task_status=None,
        retry_count=0,
        started_at=started,
        finished_at=finished,
        created_at=STARTED,
        error=None,
        output={RESULT_KEY: 1} if status is TaskState.SUCCEEDED else None,
        metadata={DUE_KEY: due.isoformat(), HOLD_KEY: "1"},
        input={"value": 1},
    )


@pytest.mark.parametrize("status", [TaskState.QUEUED, TaskState.RUNNING])
def test_a_held_short_delay_reads_scheduled_until_due_then_as_the_engine_says(status: TaskState) -> None:
    due = STARTED + timedelta(seconds=3)
    picked = STARTED + timedelta(seconds=0.1) if status is TaskState.RUNNING else None
    before = task_info(_held(status, started=picked, finished=None), None, STARTED + timedelta(seconds=1))
    assert (before.id, before.state, before.scheduled_at, before.attempts) == (
        "run-h",
        TaskState.SCHEDULED,
        due,
        0,
    )
    assert before.started_at is None and before.payload == {"value": 1}
    after = task_info(_held(status, started=picked, finished=None), None, due + timedelta(seconds=1))
    assert after.state is status
    # the worker took it early and held it: its attempt began at the due time
    assert after.started_at == (due if picked else None)


def test_a_held_short_delay_cancelled_in_its_hold_never_started() -> None:
    picked, cancelled = STARTED + timedelta(seconds=0.1), STARTED + timedelta(seconds=1)
    info = task_info(_held(TaskState.CANCELLED, started=picked, finished=cancelled), None, cancelled)
    assert (info.state, info.started_at, info.attempts) == (TaskState.CANCELLED, None, 0)
    done = task_info(
        _held(TaskState.SUCCEEDED, started=picked, finished=STARTED + timedelta(seconds=3.2)),
        None,
        STARTED + timedelta(seconds=4),
    )
    assert (done.state, done.started_at, done.attempts, done.result) == (
        TaskState.SUCCEEDED,
        STARTED + timedelta(seconds=3),
        1,
        1,
    )


def test_a_start_the_read_side_recorded_after_the_end_reads_as_the_end() -> None:
    # seen once on the engine under load: started_at later than finished_at
    ended = STARTED + timedelta(seconds=2)
    run = EngineRun(
        run_id="run-1",
        task_name="conf_echo",
        status=TaskState.SUCCEEDED,
        task_status=TaskState.SUCCEEDED,
        retry_count=0,
        started_at=ended + timedelta(milliseconds=40),
        finished_at=ended,
        created_at=STARTED,
        error=None,
        output={RESULT_KEY: 1},
        input={"value": 1},
    )
    info = task_info(run, None, ended + timedelta(seconds=1))
    assert (info.started_at, info.finished_at, info.attempts) == (ended, ended, 1)
    in_order = task_info(replace(run, started_at=STARTED), None, ended + timedelta(seconds=1))
    assert (in_order.started_at, in_order.finished_at) == (STARTED, ended)


def test_the_memory_mimic_holds_as_long_as_the_hatchet_backend() -> None:
    assert MIMIC_HOLD_SECONDS == HOLD_SECONDS
