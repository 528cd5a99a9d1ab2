"""A run the engine's read side still shows open, though its core side ended it.

hatchet-lite v0.105.0 can lose a run's final status on its read side (REST,
OLAP tables) while its core side recorded it: seen in the soak, for runs whose
worker was killed just after they returned (docs/hatchet.md, "The read side
can miss a run's end"). The backend then reads the run's core side
(``runs.get_details``) and reports that outcome once it has stood for
``READ_SIDE_GRACE`` (the read side normally follows within a second). The soak test checks it end
to end on the real engine; these tests pin the mapping and the throttle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.clients.admin import RunStatus
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

from owlclaw.backends.hatchet.lookups import (
    CHECK_EVERY,
    LIST_CHECKS_MAX,
    LOST_AFTER,
    READ_SIDE_GRACE,
    Lookups,
)
from owlclaw.backends.hatchet.status import OPEN_CHECK_AFTER, EngineRun, LocalRecord, task_info
from owlclaw.backends.hatchet.wire import RESULT_KEY
from owlclaw.scheduler.errors import SchedulerError, TaskNotFoundError
from owlclaw.scheduler.models import TaskOptions, TaskState

STARTED = datetime(2026, 11, 30, 22, 38, tzinfo=UTC)


def _open(status: TaskState = TaskState.RUNNING, started: datetime | None = STARTED) -> EngineRun:
    return EngineRun(
        run_id="run-1",
        task_name="report",
        status=status,
        task_status=None,
        retry_count=0,
        started_at=started,
        finished_at=None,
        created_at=STARTED - timedelta(seconds=1),
        error=None,
        output=None,
        input={"tag": "x"},
    )


def _core(status: RunStatus, output: Any = None, error: str | None = None, done: bool | None = None) -> Any:
    task = SimpleNamespace(output=output, error=error, status=status)
    if done is None:
        done = status not in (RunStatus.QUEUED, RunStatus.RUNNING)
    return SimpleNamespace(status=status, task_runs={"report": task}, done=done)


def test_a_run_completed_on_the_core_side_reads_succeeded_with_its_result() -> None:
    run = _open().with_core_outcome(_core(RunStatus.COMPLETED, {RESULT_KEY: {"n": 7}}))
    info = task_info(run, None, STARTED + timedelta(minutes=5))
    assert (info.state, info.result, info.attempts, info.error) == (TaskState.SUCCEEDED, {"n": 7}, 1, None)
    assert info.finished_at is None  # the read side lost it: unknown


def test_a_run_failed_on_the_core_side_is_failed_for_good_whatever_retries_are_left() -> None:
    options = TaskOptions(name="report", func=lambda ctx: None, retries=3)
    run = _open().with_core_outcome(_core(RunStatus.FAILED, error="RuntimeError: boom"))
    info = task_info(run, options, STARTED + timedelta(minutes=5))
    assert (info.state, info.error) == (TaskState.FAILED, "RuntimeError: boom")


def test_a_run_still_open_on_the_core_side_is_left_as_read() -> None:
    run = _open()
    assert run.with_core_outcome(_core(RunStatus.RUNNING)) is run
    assert run.with_core_outcome(_core(RunStatus.QUEUED)) is run
    # a status the core side derives while a task is still queued or running is not an end
    assert run.with_core_outcome(_core(RunStatus.FAILED, error="RuntimeError: boom", done=False)) is run


def test_only_a_run_shown_open_for_a_while_is_checked() -> None:
    run = _open()
    assert not run.open_too_long(STARTED + OPEN_CHECK_AFTER - timedelta(seconds=1))
    assert run.open_too_long(STARTED + OPEN_CHECK_AFTER)
    # queued: counted from its creation
    assert _open(TaskState.QUEUED, started=None).open_too_long(STARTED + OPEN_CHECK_AFTER)
    assert not _open(TaskState.SUCCEEDED).open_too_long(STARTED + timedelta(days=1))


class _Conn:
    """The two things Lookups.settle uses of a connection: ``sdk`` and ``runs``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0
        self.raw_calls = 0
        self.runs = self

    def require(self) -> _Conn:
        return self

    @contextmanager
    def sdk(self, what: str, **messages: str) -> Iterator[None]:
        try:
            yield
        except ConnectionError as exc:
            raise SchedulerError(f"could not {what}: {exc}") from exc

    async def aio_get_details(self, run_id: str) -> Any:
        self.calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    # the admin client's raw gRPC stub (wire.core_details_once)
    token = "token"

    @property
    def _admin_client(self) -> _Conn:
        return self

    def _get_or_create_v1_client(self) -> _Conn:
        return self

    def GetRunDetails(self, request: Any, metadata: Any, timeout: float) -> None:
        self.raw_calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer


@pytest.fixture
def old_run() -> EngineRun:
    return _open(started=datetime.now(UTC) - OPEN_CHECK_AFTER)


async def test_settle_reads_the_core_side_at_most_once_per_interval(
    old_run: EngineRun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="owlclaw.scheduler.hatchet")
    conn = _Conn(_core(RunStatus.RUNNING))
    lookups = Lookups(conn)  # type: ignore[arg-type]
    assert await lookups.settle(old_run) is old_run
    assert await lookups.settle(old_run) is old_run
    assert conn.calls == 1  # a poll every 0.2 s does not double its calls
    lookups._checked["run-1"] -= CHECK_EVERY
    conn.answer = _core(RunStatus.COMPLETED, {RESULT_KEY: 1})
    # the read side normally follows within a second: the first sight of the end is not reported
    assert await lookups.settle(old_run) is old_run
    assert conn.calls == 2
    first, details = lookups._ended["run-1"]
    lookups._ended["run-1"] = (first - READ_SIDE_GRACE, details)
    settled = await lookups.settle(old_run)
    assert (settled.status, settled.core_final, conn.calls) == (TaskState.SUCCEEDED, True, 2)
    # the end is kept: later reads never flip back to running, and cost no call
    again = await lookups.settle(old_run)
    assert (again.status, conn.calls) == (TaskState.SUCCEEDED, 2)
    logged = [r for r in caplog.records if getattr(r, "event", None) == "read_side_behind"]
    assert len(logged) == 1 and "run-1" in logged[0].getMessage()  # logged once per run


async def test_settle_leaves_a_recent_run_and_a_failed_look_alone(old_run: EngineRun) -> None:
    conn = _Conn(_core(RunStatus.COMPLETED))
    recent = _open(started=datetime.now(UTC))
    assert await Lookups(conn).settle(recent) is recent  # type: ignore[arg-type]
    assert conn.calls == 0
    conn.answer = ConnectionError("engine down")
    assert await Lookups(conn).settle(old_run) is old_run  # type: ignore[arg-type]
    assert conn.calls == 1


async def test_settle_without_calls_applies_only_a_known_end(old_run: EngineRun) -> None:
    conn = _Conn(_core(RunStatus.COMPLETED, {RESULT_KEY: 1}))
    lookups = Lookups(conn)  # type: ignore[arg-type]
    assert await lookups.settle(old_run, may_call=False) is old_run
    assert conn.calls == 0
    await lookups.settle(old_run)  # first sight of the end
    first, details = lookups._ended["run-1"]
    lookups._ended["run-1"] = (first - READ_SIDE_GRACE, details)
    assert (await lookups.settle(old_run, may_call=False)).status is TaskState.SUCCEEDED
    assert conn.calls == 1


class _Listing(_Conn):
    """A connection whose run listing has ``n`` runs shown running for a minute."""

    def __init__(self, n: int) -> None:
        super().__init__(_core(RunStatus.RUNNING))
        self.names = SimpleNamespace(strip=lambda name: name)
        self.tasks: dict[str, Any] = {}
        started = datetime.now(UTC) - timedelta(minutes=1)
        self.rows = [
            SimpleNamespace(
                workflow_run_external_id=f"run-{i}",
                workflow_name="report",
                status=V1TaskStatus.RUNNING,
                retry_count=0,
                started_at=started,
                finished_at=None,
                created_at=started,
                error_message=None,
                output=None,
                additional_metadata={},
                input={},
            )
            for i in range(n)
        ]

    async def aio_list(self, **kwargs: Any) -> Any:
        return SimpleNamespace(rows=self.rows)


async def test_a_listing_makes_at_most_its_budget_of_calls_the_runs_checked_longest_ago_first() -> None:
    conn = _Listing(LIST_CHECKS_MAX + 30)
    lookups = Lookups(conn)  # type: ignore[arg-type]
    assert len(await lookups.list_runs(None, None, 1000)) == LIST_CHECKS_MAX + 30
    assert conn.calls == LIST_CHECKS_MAX
    for run_id in list(lookups._checked):  # as if CHECK_EVERY had passed
        lookups._checked[run_id] -= CHECK_EVERY
    await lookups.list_runs(None, None, 1000)
    assert conn.calls == 2 * LIST_CHECKS_MAX
    assert len(lookups._checked) == LIST_CHECKS_MAX + 30  # the second listing checked the other 30 first


# a run created here that the read side does not list at all: seen after a
# PostgreSQL restart, for runs triggered just before it (docs/hatchet.md)


def _created(ago: timedelta) -> LocalRecord:
    return LocalRecord(task_name="report", payload={"tag": "x"}, created_at=datetime.now(UTC) - ago, due=None)


async def test_a_run_missing_from_the_read_side_reads_its_core_side_outcome() -> None:
    conn = _Conn(_core(RunStatus.COMPLETED, {RESULT_KEY: {"n": 7}}))
    conn.tasks = {}
    lookups = Lookups(conn)  # type: ignore[arg-type]
    lookups.local["run-1"] = _created(timedelta(seconds=5))
    assert await lookups.missing("run-1", lookups.local["run-1"]) is None  # too recent to ask
    assert conn.calls == 0
    lookups.local["run-1"] = _created(OPEN_CHECK_AFTER)
    assert await lookups.missing("run-1", lookups.local["run-1"]) is None  # first sight of the end
    first, details = lookups._ended["run-1"]
    lookups._ended["run-1"] = (first - READ_SIDE_GRACE, details)

    async def nowhere(task_id: str) -> None:
        return None

    lookups._find = nowhere  # type: ignore[method-assign]  # the read side lists no such run
    info = await lookups.status("run-1")
    assert (info.id, info.state, info.result, info.payload) == (
        "run-1",
        TaskState.SUCCEEDED,
        {"n": 7},
        {"tag": "x"},
    )
    assert conn.calls == 1


async def test_a_run_the_engine_never_stored_fails_as_lost_after_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = _Conn(TaskNotFoundError("no run 'run-1'"))
    lookups = Lookups(conn)  # type: ignore[arg-type]
    assert await lookups.missing("run-1", _created(OPEN_CHECK_AFTER)) is None  # it may yet appear
    lookups._checked["run-1"] -= CHECK_EVERY
    lost = await lookups.missing("run-1", _created(LOST_AFTER))
    assert lost is not None and lost.status is TaskState.FAILED and lost.core_final
    assert (
        lost.error is not None
        and "the engine lost this run" in lost.error
        and "run the task again" in lost.error
    )
    assert await lookups.missing("run-1", _created(LOST_AFTER)) is lost  # kept, no further call
    assert (conn.raw_calls, conn.calls) == (2, 0)  # never through the SDK's retries of "not found"
    assert [r.levelname for r in caplog.records if getattr(r, "event", None) == "run_lost"] == ["WARNING"]


async def test_a_missing_run_is_left_queued_while_the_engine_is_down() -> None:
    conn = _Conn(ConnectionError("engine down"))
    lookups = Lookups(conn)  # type: ignore[arg-type]
    assert await lookups.missing("run-1", _created(LOST_AFTER)) is None
    conn.answer = _core(RunStatus.RUNNING)
    lookups._checked["run-1"] -= CHECK_EVERY
    assert await lookups.missing("run-1", _created(LOST_AFTER)) is None  # stored, still running
    assert (conn.raw_calls, conn.calls) == (2, 1)
