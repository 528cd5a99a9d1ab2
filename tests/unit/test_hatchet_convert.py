"""An engine cron made a schedule (``convert.py``), without an engine: the
schedule calls convert an engine cron's id then apply the call, a race lost
to another client still applies it, listings show it once; a tick of a
converted cron runs no user code when the schedule decides its occurrence;
a declared cron made a schedule is not declared again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from owlclaw.backends.hatchet import convert as convert_module
from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.client import Connection
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.convert import CRON_AT_KEY, CRON_EXPRESSION_KEY, CRON_NAME_KEY, cron_tick
from owlclaw.backends.hatchet.gate import Effects
from owlclaw.backends.hatchet.naming import DECLARED_CRON_NAME
from owlclaw.backends.hatchet.wire import RESULT_KEY
from owlclaw.backends.hatchet.worker import DUPLICATE_KEY, execute
from owlclaw.scheduler.errors import SchedulerConnectionError, TaskNotFoundError
from owlclaw.scheduler.kit import make_options
from owlclaw.scheduler.models import ScheduleInfo

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
CRON = {"name": "owlclaw-abc", "expression": "*/2 * * * * *"}


def _tick(at: str = "2030-01-01T12:00:02Z") -> dict[str, str]:
    return {CRON_NAME_KEY: CRON["name"], CRON_EXPRESSION_KEY: CRON["expression"], CRON_AT_KEY: at}


def test_a_cron_run_is_told_by_the_engine_metadata() -> None:
    assert cron_tick(_tick()) == (CRON, NOW + timedelta(seconds=2))
    assert cron_tick({"owlclaw_schedule": "s1"}) is None  # a schedule's run, a plain run: not a tick


def test_a_nominal_time_not_understood_is_logged_and_not_a_tick(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "owlclaw.scheduler.hatchet"):
        assert cron_tick(_tick("yesterday")) is None
    assert "yesterday" in caplog.text


class TickBook:
    """``converted``: the schedule made from CRON was made at ``made``."""

    def __init__(self, made: datetime | None, fails: bool = False) -> None:
        self.made, self.fails = made, fails
        self.asked: list[tuple[str, dict[str, str]]] = []

    async def converted(self, task_name: str, from_cron: dict[str, str]) -> datetime | None:
        self.asked.append((task_name, from_cron))
        if self.fails:
            raise SchedulerConnectionError("state database db:5432/owlclaw is down")
        return self.made


async def _run_tick(
    book: TickBook | None, at: str = "2030-01-01T12:00:02Z"
) -> tuple[dict[str, Any], list[int]]:
    calls: list[int] = []
    ctx = SimpleNamespace(
        additional_metadata=_tick(at), workflow_run_id="run-1", attempt_number=1, is_cancelled=False
    )
    scheduler = SimpleNamespace(schedule_chain=None if book is None else SimpleNamespace(book=book))
    out = await execute(make_options(lambda p, c: calls.append(1), "job"), {}, ctx, scheduler)
    return out, calls


async def test_a_tick_after_the_conversion_runs_no_user_code() -> None:
    book = TickBook(made=NOW)
    out, calls = await _run_tick(book)
    assert out == {RESULT_KEY: None, DUPLICATE_KEY: "owlclaw-abc@2030-01-01T12:00:02+00:00"}
    assert calls == []
    assert book.asked == [("job", CRON)]


async def test_a_tick_up_to_the_conversion_runs_as_the_crons_own() -> None:
    out, calls = await _run_tick(TickBook(made=NOW + timedelta(seconds=2)))  # made at its nominal time
    assert out == {RESULT_KEY: None} and calls == [1]


async def test_a_tick_of_a_cron_never_converted_runs() -> None:
    assert (await _run_tick(TickBook(made=None)))[1] == [1]


async def test_a_tick_runs_as_before_without_a_state_database_or_when_it_is_down() -> None:
    assert (await _run_tick(None))[1] == [1]
    assert (await _run_tick(TickBook(made=NOW, fails=True)))[1] == [1]


# the client side: HatchetScheduler's hooks with a fake book and a fake engine


class Book:
    """The parts of ``ScheduleBook`` the hooks use; ``rows``: id -> ScheduleInfo."""

    def __init__(self, race: bool = False) -> None:
        self.rows: dict[str, ScheduleInfo] = {}
        self.race = race  # another client converts first
        self.converted: list[tuple[str, str, Any, dict[str, Any], dict[str, str]]] = []
        self.calls: list[tuple[str, Any]] = []

    def _row(self, schedule_id: str) -> ScheduleInfo:
        if schedule_id not in self.rows:
            raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")
        return self.rows[schedule_id]

    async def convert(
        self, cron_id: str, task_name: str, spec: Any, payload: dict[str, Any], from_cron: dict[str, str]
    ) -> tuple[datetime | None, Effects]:
        self.converted.append((cron_id, task_name, spec, payload, from_cron))
        self.rows[cron_id] = ScheduleInfo(
            id=cron_id, task_name=task_name, expression=spec.cron, payload=payload
        )
        return (None, Effects()) if self.race else (NOW, Effects())

    async def pause(self, schedule_id: str, note: str | None) -> Effects:
        self._row(schedule_id)
        self.calls.append(("pause", note))
        return Effects()

    async def skip(self, schedule_id: str, count: int) -> None:
        self._row(schedule_id)
        self.calls.append(("skip", count))

    async def preview(self, schedule_id: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        self._row(schedule_id)
        return [start]

    async def list(self, task_name: str | None) -> list[ScheduleInfo]:
        return list(self.rows.values())

    async def get(self, schedule_id: str) -> ScheduleInfo:
        return self._row(schedule_id)

    async def remove(self, schedule_id: str) -> tuple[bool, Effects]:
        return self.rows.pop(schedule_id, None) is not None, Effects()

    async def now(self) -> datetime:
        return NOW + timedelta(seconds=5)  # the settle time is over: no wait


class FakeChain:
    def __init__(self, book: Book) -> None:
        self.book = book

    async def execute(self, effects: Effects, *, kick: bool = True) -> list[str]:
        return []


class Crons:
    """The engine's crons of the SDK client (``cron.aio_list``, ``aio_delete``)."""

    def __init__(self, workflow: str) -> None:
        self.rows = [
            SimpleNamespace(
                metadata=SimpleNamespace(id="cron-1"),
                name="owlclaw-abc",
                workflow_name=workflow,
                cron="0 * * * *",
                input={"k": 1},
            )
        ]
        self.deleted: list[str] = []

    async def aio_list(self, **kwargs: Any) -> Any:
        return SimpleNamespace(rows=list(self.rows))

    async def aio_delete(self, cron_id: str) -> None:
        self.deleted.append(cron_id)
        self.rows = [r for r in self.rows if r.metadata.id != cron_id]


def _scheduler(book: Book) -> tuple[HatchetScheduler, Crons]:
    config = HatchetConfig.model_validate(
        {"api_token": "t", "host_port": "localhost:7077", "state_database_url": "postgresql://u:p@h:5432/db"}
    )
    scheduler = HatchetScheduler(config)
    scheduler.task("job")(lambda p, c: None)
    crons = Crons(scheduler._connection.names.workflow("job"))
    scheduler._connection.client = SimpleNamespace(cron=crons)  # type: ignore[assignment]
    scheduler._chain = FakeChain(book)  # type: ignore[assignment]
    return scheduler, crons


async def test_pausing_an_engine_cron_makes_it_a_schedule_with_its_id_then_pauses_it() -> None:
    book = Book()
    scheduler, crons = _scheduler(book)
    await scheduler.pause_schedule("cron-1", "quiet")
    [(cron_id, task, spec, payload, from_cron)] = book.converted
    assert (cron_id, task, spec.cron, spec.timezone, spec.overlap.value, payload) == (
        "cron-1", "job", "0 * * * *", "UTC", "allow_all", {"k": 1}
    )  # fmt: skip
    assert from_cron == {"name": "owlclaw-abc", "expression": "0 * * * *"}
    assert book.calls == [("pause", "quiet")]
    assert crons.deleted == ["cron-1"]
    assert [s.id for s in await scheduler.list_schedules()] == ["cron-1"]
    await scheduler.skip_schedule("cron-1", 2)  # a schedule now: no second conversion
    assert len(book.converted) == 1 and book.calls[-1] == ("skip", 2)


async def test_a_conversion_lost_to_another_client_still_applies_the_call() -> None:
    book = Book(race=True)
    scheduler, crons = _scheduler(book)
    assert await scheduler.preview_schedule("cron-1", NOW, NOW + timedelta(hours=1)) == [NOW]
    assert crons.deleted == []  # the client that converted deletes the engine cron
    # until it does, the cron and the schedule are one entry
    assert [s.id for s in await scheduler.list_crons()] == ["cron-1"]


async def test_an_unknown_id_is_not_found_and_nothing_is_converted() -> None:
    book = Book()
    scheduler, _ = _scheduler(book)
    with pytest.raises(TaskNotFoundError, match="list_schedules"):
        await scheduler.pause_schedule("no-such-id")
    assert book.converted == [] and book.calls == []


async def test_removing_a_converted_cron_whose_delete_failed_deletes_the_engine_cron_too() -> None:
    book = Book(race=True)  # converted elsewhere; that client died before deleting the cron
    scheduler, crons = _scheduler(book)
    await scheduler.skip_schedule("cron-1", 1)
    await scheduler.remove_cron("cron-1")
    assert crons.deleted == ["cron-1"] and book.rows == {}
    with pytest.raises(TaskNotFoundError):
        await scheduler.remove_cron("cron-1")


async def test_the_engine_cron_is_deleted_only_once_its_ticks_up_to_the_conversion_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    class Early(Book):
        async def now(self) -> datetime:
            return NOW + timedelta(seconds=0.5)

    monkeypatch.setattr(convert_module.asyncio, "sleep", sleep)
    scheduler, crons = _scheduler(Early())
    await scheduler.skip_schedule("cron-1", 1)
    assert slept == [pytest.approx(convert_module.CRON_SETTLE.total_seconds() - 0.5)]
    assert crons.deleted == ["cron-1"]


async def test_a_declared_cron_made_a_schedule_is_not_registered_again() -> None:
    asked: list[tuple[str, dict[str, str]]] = []
    created: list[str] = []

    class DeclaredBook:
        async def converted(self, task_name: str, from_cron: dict[str, str]) -> datetime | None:
            asked.append((task_name, from_cron))
            return NOW

    class Client:
        class cron:  # the SDK's attribute
            @staticmethod
            async def aio_list(**kwargs: Any) -> Any:
                return SimpleNamespace(rows=[])  # the engine cron was deleted by the conversion

            @staticmethod
            async def aio_create(task: str, name: str, expression: str, *args: Any) -> None:
                created.append(task)

    options = make_options(lambda p, c: None, "digest", cron="0 9 * * *")
    scheduler = SimpleNamespace(schedule_chain=SimpleNamespace(book=DeclaredBook()))
    config = HatchetConfig.model_validate({"api_token": "t", "host_port": "localhost:7077"})
    connection = Connection(config, {"digest": options}, scheduler)
    connection.client = Client()  # type: ignore[assignment]
    await connection._register_declared_crons()
    assert asked == [("digest", {"name": DECLARED_CRON_NAME, "expression": "0 9 * * *"})]
    assert created == []
    scheduler.schedule_chain = None  # no state database: registered as before
    await connection._register_declared_crons()
    assert created == ["digest"]
