"""The worker side of schedules on Hatchet, without an engine: a run a
schedule fired asks the book before the user code runs, sees its occurrence
as ``ctx.scheduled_for`` / ``ctx.occurrence_id``, and reports when it is
final; the link input is checked; links are served by the ordinary worker;
without a state database the schedule calls say which setting to set."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.chain import parse_link
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.layout import plan
from owlclaw.backends.hatchet.naming import LINK, Names
from owlclaw.backends.hatchet.rows import Begin
from owlclaw.backends.hatchet.wire import NOMINAL_KEY, OCCURRENCE_KEY, RESULT_KEY, SCHEDULE_KEY
from owlclaw.backends.hatchet.worker import DUPLICATE_KEY, execute
from owlclaw.scheduler.errors import NotSupportedError, TaskDefinitionError
from owlclaw.scheduler.kit import make_options

NOMINAL = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
OCC = "sched-1@2030-01-02T03:04:05Z"


class FakeChain:
    """What ``execute`` calls of ``Chain``: the book's answer is ``verdict``."""

    def __init__(self, verdict: Begin) -> None:
        self.verdict = verdict
        self.begun: list[str] = []
        self.ends: list[tuple[str, datetime]] = []

    async def begin(self, metadata: dict[str, Any], run_key: str) -> tuple[str, datetime, str, Begin]:
        self.begun.append(run_key)
        nominal = datetime.fromisoformat(metadata[NOMINAL_KEY])
        return metadata[SCHEDULE_KEY], nominal, metadata[OCCURRENCE_KEY], self.verdict

    async def ended(self, schedule_id: str, nominal: datetime) -> None:
        self.ends.append((schedule_id, nominal))

    def ended_later(self, schedule_id: str, nominal: datetime) -> None:
        self.ends.append((schedule_id, nominal))


def _ctx(attempt: int = 1) -> Any:
    metadata = {SCHEDULE_KEY: "sched-1", NOMINAL_KEY: NOMINAL.isoformat(), OCCURRENCE_KEY: OCC}
    return SimpleNamespace(
        additional_metadata=metadata, workflow_run_id="run-1", attempt_number=attempt, is_cancelled=False
    )


async def test_a_scheduled_run_sees_its_occurrence_and_reports_its_end() -> None:
    seen: list[tuple[Any, Any]] = []

    def job(payload: dict[str, Any], ctx: Any) -> str:
        seen.append((ctx.scheduled_for, ctx.occurrence_id))
        return "done"

    chain = FakeChain(Begin.RUN)
    out = await execute(make_options(job, "job"), {}, _ctx(), SimpleNamespace(schedule_chain=chain))
    assert out == {RESULT_KEY: "done"}
    assert seen == [(NOMINAL, OCC)]
    assert chain.begun == ["run-1"]  # the engine's run id: the same on its retries
    assert chain.ends == [("sched-1", NOMINAL)]


async def test_a_duplicate_run_of_an_occurrence_runs_no_user_code() -> None:
    calls: list[int] = []
    chain = FakeChain(Begin.DUPLICATE)
    options = make_options(lambda p, c: calls.append(1), "job")
    out = await execute(options, {}, _ctx(), SimpleNamespace(schedule_chain=chain))
    assert out == {RESULT_KEY: None, DUPLICATE_KEY: OCC}
    assert calls == [] and chain.ends == []


async def test_a_superseded_run_cancels_itself_without_running_user_code() -> None:
    """cancel_previous: the cancel sent for this run may have reached the engine
    before the run did; the run then asks the engine to cancel it."""
    calls: list[int] = []
    cancels: list[str] = []
    ctx = _ctx()

    async def aio_cancel() -> None:
        cancels.append(ctx.workflow_run_id)

    ctx.aio_cancel = aio_cancel
    chain = FakeChain(Begin.SUPERSEDED)
    options = make_options(lambda p, c: calls.append(1), "job")
    out = await execute(options, {}, ctx, SimpleNamespace(schedule_chain=chain))
    assert out == {RESULT_KEY: None}
    assert calls == [] and cancels == ["run-1"] and chain.ends == []


async def test_a_failed_attempt_with_retries_left_is_not_the_end_of_the_occurrence() -> None:
    def flaky(payload: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError("flaky")

    chain = FakeChain(Begin.RUN)
    options = make_options(flaky, "flaky", retries=1)
    with pytest.raises(RuntimeError):
        await execute(options, {}, _ctx(attempt=1), SimpleNamespace(schedule_chain=chain))
    assert chain.ends == []
    with pytest.raises(RuntimeError):
        await execute(options, {}, _ctx(attempt=2), SimpleNamespace(schedule_chain=chain))
    assert chain.ends == [("sched-1", NOMINAL)]


async def test_a_scheduled_run_on_a_worker_without_schedules_fails_naming_the_setting() -> None:
    from hatchet_sdk.exceptions import NonRetryableException

    with pytest.raises(NonRetryableException, match="state_database_url"):
        await execute(make_options(lambda p, c: None, "job"), {}, _ctx(), SimpleNamespace())


def test_a_link_input_is_checked() -> None:
    assert parse_link({"schedule_id": "s", "nominal": NOMINAL.isoformat(), "gen": 3}) == ("s", NOMINAL, 3)
    for bad in (None, {"schedule_id": "s"}, {"schedule_id": "s", "nominal": "x", "gen": "1"}):
        with pytest.raises(ValueError, match="schedule link"):
            parse_link(bad)


def test_the_link_workflow_is_served_by_the_ordinary_worker() -> None:
    async def durable(payload: dict[str, Any], ctx: Any) -> None:
        return None

    tasks = {"a": make_options(lambda p, c: None, "a"), "d": make_options(durable, "d", durable=True)}
    ordinary, durable = plan(tasks, {"a": "A", "d": "D"}, ["LINK"])
    assert ordinary == ["A", "LINK"] and durable == ["D"]
    ordinary, durable = plan({"d": tasks["d"]}, {"d": "D"}, ["LINK"])
    assert ordinary == ["LINK"] and durable == ["D"]


def test_the_link_name_is_reserved() -> None:
    with pytest.raises(TaskDefinitionError, match="reserved"):
        Names("ns").check(make_options(lambda p, c: None, LINK))


def test_schedules_need_the_state_database() -> None:
    off = HatchetScheduler(HatchetConfig.model_validate({"api_token": "t", "host_port": "localhost:7077"}))
    assert off.capabilities.schedules is False and off.schedule_chain is None
    on = HatchetScheduler(
        HatchetConfig.model_validate(
            {
                "api_token": "t",
                "host_port": "localhost:7077",
                "state_database_url": "postgresql://u:secret-pw@localhost:5432/owlclaw",
            }
        )
    )
    assert on.capabilities.schedules is True and on.schedule_chain is not None
    assert "secret-pw" not in repr(on)


async def test_without_the_state_database_a_schedule_call_names_the_setting() -> None:
    config = HatchetConfig.model_validate({"api_token": "t", "host_port": "localhost:7077"})
    scheduler = HatchetScheduler(config)
    scheduler.task("job")(lambda p, c: None)
    scheduler._connection.client = object()  # type: ignore[assignment]  # "connected", no engine call is made
    with pytest.raises(NotSupportedError, match=r"state_database_url.*OWLCLAW_STATE_DATABASE_URL"):
        await scheduler.pause_schedule("some-id")
    with pytest.raises(NotSupportedError, match="state_database_url"):
        await scheduler.add_cron("job", "0 9 * * *", timezone="Europe/Paris")


async def test_begin_waits_for_the_state_database_then_answers() -> None:
    from owlclaw.backends.hatchet.chain import Chain
    from owlclaw.scheduler.errors import SchedulerConnectionError

    class Book:
        calls = 0

        async def begin(self, schedule_id: str, nominal: datetime, run_key: str) -> bool:
            self.calls += 1
            if self.calls < 3:
                raise SchedulerConnectionError("state database at db:5432/owlclaw is down")
            return True

    book = Book()
    chain = Chain(None, None, "ns", book=book)  # type: ignore[arg-type]
    metadata = {SCHEDULE_KEY: "sched-1", NOMINAL_KEY: NOMINAL.isoformat(), OCCURRENCE_KEY: OCC}
    assert await chain.begin(metadata, "run-1") == ("sched-1", NOMINAL, OCC, True)
    assert book.calls == 3


def test_a_zoned_cron_task_without_the_state_database_names_the_setting() -> None:
    config = HatchetConfig.model_validate({"api_token": "t", "host_port": "localhost:7077"})
    with pytest.raises(TaskDefinitionError, match=r"timezone='Europe/Paris'.*state_database_url"):
        HatchetScheduler(config).task("digest", cron="0 9 * * *", timezone="Europe/Paris")(lambda p, c: None)


async def test_a_zoned_declared_cron_is_one_schedule_however_often_the_app_connects() -> None:
    from owlclaw.backends.hatchet.gate import Effects
    from owlclaw.scheduler.models import ScheduleInfo

    added: list[tuple[str, Any]] = []

    class Book:
        async def list(self, task_name: str | None) -> list[ScheduleInfo]:
            return [
                ScheduleInfo(id="s1", task_name=n, expression=spec.cron, payload={}, timezone=spec.timezone)
                for n, spec in added
            ]

        async def add(self, task_name: str, spec: Any, payload: dict[str, Any]) -> tuple[str, Effects]:
            added.append((task_name, spec))
            return "s1", Effects()

    class FakeChain:
        book = Book()

        async def execute(self, effects: Effects) -> list[str]:
            return []

    config = HatchetConfig.model_validate(
        {"api_token": "t", "host_port": "localhost:7077", "state_database_url": "postgresql://u:p@h:5432/db"}
    )
    scheduler = HatchetScheduler(config)
    scheduler.task("digest", cron="0 9 * * *", timezone="Europe/Paris")(lambda p, c: None)
    scheduler.task("utc", cron="0 9 * * *")(lambda p, c: None)  # an engine cron, not a schedule
    scheduler._chain = FakeChain()  # type: ignore[assignment]
    for _ in range(2):
        await scheduler._declare_zoned_crons(dict(scheduler.tasks))
    assert [(n, s.cron, s.timezone, s.overlap.value) for n, s in added] == [
        ("digest", "0 9 * * *", "Europe/Paris", "allow_all")
    ]
