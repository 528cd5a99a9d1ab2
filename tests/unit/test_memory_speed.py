"""What the memory backend's fast paths must keep exact (no timing here):
the cached cron matcher agrees with croniter, status copies payloads
faithfully, run ids stay unique, and a concurrency=1 queue drains in order."""

from __future__ import annotations

import dataclasses
import enum
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from croniter import croniter

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.backends.memory.runs import Timetable
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.clock import SystemClock
from owlclaw.scheduler.cron import _croniter_form, next_fire_time, normalize_cron
from owlclaw.scheduler.errors import PayloadError
from owlclaw.scheduler.kit import MAX_PAYLOAD_BYTES, check_payload, copy_json, json_roundtrip
from owlclaw.scheduler.kit.payloads import MAX_RESULT_BYTES, check_result
from owlclaw.scheduler.models import TaskInfo

START = datetime(2030, 1, 1, tzinfo=UTC)


def croniter_next(expression: str, after: datetime) -> datetime:
    form = _croniter_form(normalize_cron(expression).split(" "))
    found: datetime = croniter(form, after).get_next(datetime)
    return found.astimezone(UTC)


def random_field(rng: random.Random, lo: int, hi: int) -> str:
    r = rng.random()
    if r < 0.3:
        return "*"
    if r < 0.45:
        return f"*/{rng.randint(1, hi - lo + 1)}"
    a = rng.randint(lo, hi)
    b = rng.randint(a, hi)
    if r < 0.6:
        return f"{a}-{b}"
    if r < 0.7:
        return f"{a}-{b}/{rng.randint(1, 5)}"
    return ",".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(1, 3)))


def test_next_fire_time_matches_croniter_on_random_expressions_and_starts() -> None:
    rng = random.Random(14)
    checked = 0
    while checked < 1500:
        fields = [
            random_field(rng, 0, 59),
            random_field(rng, 0, 23),
            random_field(rng, 1, 31),
            random_field(rng, 1, 12),
            random_field(rng, 0, 6),
        ]
        if rng.random() < 0.4:
            fields.insert(0, random_field(rng, 0, 59))  # seconds first
        try:
            expression = normalize_cron(" ".join(fields))
        except ValueError:
            continue  # never fires, or the engine would refuse it
        when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 8 * 365 * 86400))
        if rng.random() < 0.3:
            when = when.replace(second=0, microsecond=0)
        for _ in range(4):  # a chain of ticks, as a cron runs
            expected = croniter_next(expression, when)
            assert next_fire_time(expression, when) == expected, (expression, when)
            when = expected
            checked += 1


@pytest.mark.parametrize(
    ("expression", "after"),
    [
        ("0 0 29 2 *", datetime(2025, 3, 1, tzinfo=UTC)),  # next leap day, 2028
        ("0 12 31 * *", datetime(2030, 4, 30, 13, tzinfo=UTC)),  # skips 30-day months
        ("59 23 28-31 * *", datetime(2030, 2, 28, 23, 59, tzinfo=UTC)),
        ("0 0 1 1 *", datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # year end
        ("*/10 * * * * *", datetime(2030, 1, 1, 0, 0, 55, 500000, tzinfo=UTC)),  # seconds field
        ("30 59 23 31 12 *", datetime(2030, 12, 31, 23, 59, 30, tzinfo=UTC)),
        ("* * * * * *", datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("0 0 13 * 5", datetime(2030, 1, 1, tzinfo=UTC)),  # day-of-month OR day-of-week
        ("0 9 * * 1-5", datetime(2030, 1, 4, 10, tzinfo=UTC)),  # Friday -> Monday
        ("0 0 * * 0", datetime(2030, 1, 5, tzinfo=UTC)),
        ("0 0 L * *", datetime(2030, 2, 1, tzinfo=UTC)),  # croniter computes these
        ("0 0 * * 5#2", datetime(2030, 2, 1, tzinfo=UTC)),
        ("0 0 * jul wed", datetime(2030, 1, 1, tzinfo=UTC)),
        ("@yearly", datetime(2028, 2, 29, 12, tzinfo=UTC)),
        ("@monthly", datetime(2030, 1, 31, 23, 59, 59, tzinfo=UTC)),
        ("@weekly", datetime(2030, 1, 5, 23, 59, tzinfo=UTC)),
        ("@daily", datetime(2030, 1, 1, tzinfo=UTC)),
        ("@hourly", datetime(2030, 1, 1, 0, 59, 59, tzinfo=UTC)),
    ],
)
def test_next_fire_time_edges_match_croniter(expression: str, after: datetime) -> None:
    when = after
    for _ in range(6):
        expected = croniter_next(expression, when)
        assert next_fire_time(expression, when) == expected
        when = expected


def test_next_fire_time_takes_any_timezone_and_answers_in_utc() -> None:
    after = datetime(2030, 1, 1, 12, 30, tzinfo=UTC).astimezone()
    nxt = next_fire_time("0 * * * *", after)
    assert nxt == datetime(2030, 1, 1, 13, tzinfo=UTC) and nxt.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"n": 1, "s": "é", "f": 1.5, "b": True, "none": None},
        {"deep": {"list": [1, [2, {"x": [3.25, None]}], "s"], "d": {}}},
        {"big": 10**30, "neg": -0.0, "text": "\ud83e\udd89"},
    ],
)
def test_copy_json_returns_what_a_round_trip_returns_and_shares_nothing(value: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(value))
    copied = copy_json(stored)
    assert copied == json_roundtrip(stored, "payload")
    assert json.dumps(copied) == json.dumps(stored)

    def containers(v: Any) -> list[int]:
        found = [id(v)] if isinstance(v, (dict, list)) else []
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else []
        for child in children:
            found.extend(containers(child))
        return found

    assert not set(containers(copied)) & set(containers(stored))


async def test_status_payload_cannot_be_changed_through_the_caller_or_the_answer() -> None:
    s = MemoryScheduler(clock=VirtualClock(start=START))

    @s.task(name="job")
    async def job(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async with s:
        sent = {"user": {"name": "ada", "tags": ["a"]}}
        task_id = await s.schedule_task("job", sent, delay_seconds=60)
        sent["user"]["tags"].append("from the caller")  # type: ignore[index]
        first = await s.get_task_status(task_id)
        assert isinstance(first.payload, dict)
        first.payload["user"]["tags"].append("from the answer")
        second = await s.get_task_status(task_id)
        assert second.payload == {"user": {"name": "ada", "tags": ["a"]}}
        assert second.result is None


def test_run_ids_are_unique_uuid4_text_across_timetables() -> None:
    ids = [t.new_id() for t in (Timetable(SystemClock()), Timetable(SystemClock())) for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


async def test_a_concurrency_one_queue_drains_one_at_a_time_in_priority_then_arrival_order() -> None:
    s = MemoryScheduler(clock=VirtualClock(start=START))
    order: list[int] = []
    running = 0
    most = 0

    @s.task(name="one", concurrency=1)
    async def one(payload: dict[str, Any], ctx: TaskContext) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await ctx.scheduler.list_tasks(limit=1)  # yield to the loop while "running"
        order.append(payload["n"])
        running -= 1

    @s.task(name="free")
    async def free(payload: dict[str, Any], ctx: TaskContext) -> None:
        order.append(-1)

    async with s:
        ids = [await s.run_task("one", {"n": n}, priority=3 if n % 5 == 0 else 1) for n in range(60)]
        cancelled = ids[7]
        assert await s.cancel_task(cancelled)
        await s.run_task("free")
        await s.start_worker()
        await s.run_until_idle()
        states = {(await s.get_task_status(i)).state for i in ids if i != cancelled}
    assert states == {TaskState.SUCCEEDED}
    assert most == 1
    assert order.count(-1) == 1
    ran = [n for n in order if n >= 0]
    # the first to queue starts at once; then the high-priority ones, then the rest, each in arrival order
    high = [n for n in range(1, 60) if n % 5 == 0]
    low = [n for n in range(1, 60) if n % 5 != 0 and n != 7]
    assert ran == [0, *high, *low]


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "payload",
    [
        {"n": 1, "s": "x", "f": 2.5, "b": False, "none": None},
        {1: "int key", "n": 2},  # keys become strings
        {"level": Level.HIGH},  # an int subclass comes back as a plain int
        {"t": (1, 2)},  # a tuple comes back as a list
        {"nested": {"a": [1, {"b": None}]}},
        {"big": 10**30, "neg": -(10**17), "u": "\u00e9\ud800", "": ""},  # past the small-int bound; escapes
    ],
)
def test_check_payload_returns_what_a_json_round_trip_returns(payload: dict[Any, Any]) -> None:
    checked = check_payload(payload)
    expected = json.loads(json.dumps(payload))
    assert checked == expected
    assert [type(v) for v in checked.values()] == [type(v) for v in expected.values()]
    assert list(checked) == list(expected) and all(type(k) is str for k in checked)
    assert checked is not payload


@pytest.mark.parametrize(
    "bad",
    [
        {"x": float("nan")},
        {"x": float("-inf")},
        {"x": object()},
        {"x": "a" * MAX_PAYLOAD_BYTES},
        {"x": "\x00" * (MAX_PAYLOAD_BYTES // 6 + 1)},  # short in characters, over the limit escaped
    ],
)
def test_check_payload_still_refuses_flat_payloads_json_would_refuse(bad: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        check_payload(bad)


@pytest.mark.parametrize(
    "result",
    [
        None,
        True,
        7,
        -(10**17),
        10**30,  # past the fast path's ints
        2.5,
        -0.0,
        "text",
        "\ud800 lone surrogate",
        Level.HIGH,  # an int subclass comes back as a plain int
        {"n": 1, "s": "x", "f": 2.5, "b": False, "none": None},
        {1: "int key"},
        {"t": (1, 2)},
        [1, "a", {"b": None}],
        (1, 2),
    ],
)
def test_check_result_returns_what_a_json_round_trip_returns(result: Any) -> None:
    checked = check_result(result, "the result")
    expected = json.loads(json.dumps(result))
    assert checked == expected and type(checked) is type(expected)
    if isinstance(expected, dict):
        assert [type(v) for v in checked.values()] == [type(v) for v in expected.values()]
        assert list(checked) == list(expected) and checked is not result


@pytest.mark.parametrize(
    "bad",
    [
        float("nan"),
        float("inf"),
        {"x": float("nan")},
        {"x": object()},
        object(),
        "\x00" * (MAX_RESULT_BYTES // 6 + 1),  # short in characters, over the limit escaped
        {"x": "a" * MAX_RESULT_BYTES},
        ["a" * MAX_RESULT_BYTES],
    ],
)
def test_check_result_refuses_what_json_or_the_size_limit_refuses(bad: Any) -> None:
    with pytest.raises(PayloadError):
        check_result(bad, "the result")


async def test_status_info_sets_every_field_of_task_info() -> None:
    s = MemoryScheduler(clock=VirtualClock(start=START))

    @s.task(name="job")
    async def job(payload: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
        return {"done": 1}

    async with s:
        await s.start_worker()
        task_id = await s.schedule_task("job", {"n": 1}, delay_seconds=5)
        await s.advance(6)
        info = await s.get_task_status(task_id)
    assert set(vars(info)) == {f.name for f in dataclasses.fields(TaskInfo)}
    assert not hasattr(TaskInfo, "__post_init__")
    rebuilt = TaskInfo(**{f.name: getattr(info, f.name) for f in dataclasses.fields(TaskInfo)})
    assert rebuilt == info and repr(rebuilt) == repr(info)
    assert info.result == {"done": 1} and info.state is TaskState.SUCCEEDED


def test_next_due_without_crons_skips_ticks_and_dead_or_fired_entries() -> None:
    book = Timetable(VirtualClock(start=START))
    assert book.next_due(skip_crons=True) is None
    book.new_cron("tick", "* * * * *", {})
    assert book.next_due(skip_crons=True) is None
    assert book.next_due() == START + timedelta(minutes=1)
    entries = [book.push(START + timedelta(seconds=s), "due", None) for s in (300, 100, 200)]
    assert book.next_due(skip_crons=True) == START + timedelta(seconds=100)
    entries[1].dead = True  # cancelled, or fired (the backend marks fired entries dead)
    assert book.next_due(skip_crons=True) == START + timedelta(seconds=200)
    entries[2].dead = entries[0].dead = True
    assert book.next_due(skip_crons=True) is None
    assert book.next_due() == START + timedelta(minutes=1)


async def test_run_until_idle_stops_after_the_last_delayed_run_while_a_cron_ticks() -> None:
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))
    ticks: list[datetime] = []

    @scheduler.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        ticks.append(scheduler.clock.now())

    @scheduler.task(name="later")
    async def later(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async with scheduler:
        await scheduler.start_worker()
        await scheduler.add_cron("tick", "* * * * *")
        ids = [await scheduler.schedule_task("later", {}, delay_seconds=s) for s in (90, 30, 150)]
        await scheduler.cancel_task(ids[2])
        await scheduler.run_until_idle()
        assert scheduler.clock.now() == START + timedelta(seconds=90)
        assert ticks == [START + timedelta(minutes=1)]
        assert [(await scheduler.get_task_status(i)).state for i in ids] == [
            TaskState.SUCCEEDED,
            TaskState.SUCCEEDED,
            TaskState.CANCELLED,
        ]


def test_a_successful_outcome_built_at_once_equals_the_dataclass_one() -> None:
    from owlclaw.scheduler.kit.attempts import AttemptOutcome, _success

    fast = _success(3, {"a": [1]})
    slow = AttemptOutcome(attempt=3, result={"a": [1]})
    assert fast == slow
    # every field reads the same (those not set on the instance come from the class's defaults)
    names = [f.name for f in dataclasses.fields(AttemptOutcome)]
    assert {n: getattr(fast, n) for n in names} == {n: getattr(slow, n) for n in names}
    assert repr(fast) == repr(slow)
    assert fast.succeeded and fast.final
