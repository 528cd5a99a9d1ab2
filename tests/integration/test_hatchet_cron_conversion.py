"""A plain engine cron (``add_cron`` without a zone, ``@task(cron=...)``) made a
schedule with the same id by a schedule call, on the real engine, as memory
does: each occurrence runs once across the change (the cron's ticks up to
the conversion, the schedule's after it; a tick the engine still creates
after it runs no user code), preview equals what then fires, pause stops it.

Each run of ``conf_occurrence`` is read from the engine with its metadata:
a cron's tick carries ``hatchet__cron_scheduled_at`` (its nominal time), a
run the schedule fired returns ``ctx.scheduled_for``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from processes import WorkerProcess
from test_hatchet_schedules import engine, schedule_worker  # noqa: F401 - the module's own namespace

from owlclaw.backends.hatchet.convert import cron_tick
from owlclaw.backends.hatchet.gate import Effects, ScheduleBook
from owlclaw.backends.hatchet.store import ScheduleStore
from owlclaw.backends.hatchet.wire import RESULT_KEY, payload_of
from owlclaw.backends.hatchet.worker import DUPLICATE_KEY
from owlclaw.scheduler.errors import TaskNotFoundError
from owlclaw.scheduler.polling import PollTimeoutError, poll_until
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec, occurrences
from owlclaw.scheduler.schedules.occurrences import TICK
from owlclaw.scheduler.testing.tasks import DECLARED_CRON

pytestmark = pytest.mark.integration

TASK = "conf_occurrence"
CRON = "*/2 * * * * *"
SPEC = ScheduleSpec(cron=CRON)
FIRE_TIMEOUT = 60.0  # a fresh engine hands out the first runs slowly (docs/hatchet.md)
QUIET = 6.0  # seconds watched for runs that must not come


@pytest.fixture(scope="module")
def worker(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:  # noqa: F811
    process = schedule_worker(engine, tmp_path_factory.mktemp("cron-conversion-workers"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def scheduler(engine: Any, worker: WorkerProcess) -> AsyncIterator[Any]:  # noqa: F811
    from conftest import connected

    async with connected(engine, state_database_url=engine.state_database_url) as s:
        yield s


@dataclass(frozen=True)
class Runs:
    """The finished runs of one cron (by payload tag), by nominal time."""

    ticks: Counter[datetime]  # the cron's ticks that ran the task
    superseded: Counter[datetime]  # the cron's ticks that ended without running it
    fired: Counter[datetime]  # the schedule's runs (each ran the task)
    tick_lag: dict[datetime, tuple[float, float]]  # a tick's nominal -> (created, started) after it, s

    @property
    def ran(self) -> Counter[datetime]:
        return self.ticks + self.fired


async def runs(scheduler: Any, cron_id: str, tag: str, since: datetime) -> Runs:
    conn = scheduler._lookups.conn
    wid = await conn.workflow_id(TASK)
    client = conn.require()
    rows = (await client.runs.aio_list(since=since, workflow_ids=[wid], limit=1000, only_tasks=False)).rows
    ticks: Counter[datetime] = Counter()
    superseded: Counter[datetime] = Counter()
    fired: Counter[datetime] = Counter()
    lag: dict[datetime, tuple[float, float]] = {}
    for row in rows or []:
        if payload_of(row.input).get("tag") != tag:
            continue
        output = row.output if isinstance(row.output, dict) else None
        if output is None:
            continue  # not finished
        result = output.get(RESULT_KEY)
        tick = cron_tick(dict(row.additional_metadata or {}))
        if tick is not None:
            (superseded if DUPLICATE_KEY in output else ticks)[tick[1]] += 1
            if row.started_at is not None:
                created, started = row.created_at - tick[1], row.started_at - tick[1]
                lag[tick[1]] = (created.total_seconds(), started.total_seconds())
        elif isinstance(result, dict) and str(result.get("occurrence_id")).startswith(cron_id + "@"):
            fired[datetime.fromisoformat(result["scheduled_for"])] += 1
    return Runs(ticks, superseded, fired, lag)


async def until(scheduler: Any, cron_id: str, tag: str, since: datetime, done: Any, what: str) -> Runs:
    return await poll_until(
        lambda: runs(scheduler, cron_id, tag, since), done, timeout=FIRE_TIMEOUT, interval=1.0, what=what
    )


def grid(first: datetime, last: datetime) -> list[datetime]:
    return list(occurrences(SPEC, first - TICK, last))


async def test_a_cron_previewed_becomes_a_schedule_and_each_occurrence_runs_once(scheduler: Any) -> None:
    tag, since = uuid.uuid4().hex, datetime.now(UTC) - timedelta(seconds=5)
    cron_id = await scheduler.add_cron(TASK, CRON, {"tag": tag})
    before = await until(
        scheduler, cron_id, tag, since, lambda r: len(r.ticks) >= 2, "2 ticks of the engine cron"
    )
    assert not before.fired, before

    called = datetime.now(UTC)
    start, end = called + timedelta(seconds=4), called + timedelta(seconds=10)
    preview = await scheduler.preview_schedule(cron_id, start, end)  # converts
    assert preview == grid(start, end - TICK), preview

    info = await scheduler.get_schedule(cron_id)
    assert (info.id, info.expression, info.timezone, info.overlap.value) == (
        cron_id,
        CRON,
        "UTC",
        "allow_all",
    )
    assert [s.id for s in await scheduler.list_schedules(TASK)].count(cron_id) == 1
    assert [c.id for c in await scheduler.list_crons(TASK)].count(cron_id) == 1
    engine_crons = (await scheduler._lookups.conn.require().cron.aio_list(limit=1000)).rows or []
    assert cron_id not in [str(c.metadata.id) for c in engine_crons], "the engine cron was not deleted"

    seen = await until(
        scheduler,
        cron_id,
        tag,
        since,
        lambda r: all(t in r.fired for t in preview),
        "the previewed occurrences, fired by the schedule",
    )
    doubled = {t.isoformat(): n for t, n in seen.ran.items() if n > 1}
    assert not doubled, f"occurrences run twice across the conversion: {doubled} ({seen})"
    first, last = min(seen.ran), preview[-1]
    holes = [t.isoformat() for t in grid(first, last) if t not in seen.ran]
    assert not holes, f"occurrences lost across the conversion: {holes} ({seen})"
    assert max(seen.ticks) < min(seen.fired), f"a tick ran after the schedule took over: {seen}"
    assert not set(seen.superseded) - set(seen.fired), f"a superseded tick whose occurrence never ran: {seen}"
    print(
        f"conversion at {called.isoformat()}: superseded ticks",
        sorted(t.isoformat() for t in seen.superseded),
        "; tick lag (created, started) after nominal, s:",
        [(round(c, 3), round(st, 3)) for _, (c, st) in sorted(seen.tick_lag.items())],
    )  # docs/hatchet.md's figures

    await scheduler.pause_schedule(cron_id)
    paused = datetime.now(UTC)
    try:
        late = await poll_until(
            lambda: runs(scheduler, cron_id, tag, since),
            lambda r: any(t > paused + TICK for t in r.ran),
            timeout=QUIET,
            interval=1.0,
            what="a run after the pause",
        )
    except PollTimeoutError:
        pass
    else:
        raise AssertionError(f"the paused schedule ran occurrences after {paused.isoformat()}: {late}")

    await scheduler.remove_cron(cron_id)  # a cron's id, now a schedule's
    assert cron_id not in [s.id for s in await scheduler.list_schedules(TASK)]
    with pytest.raises(TaskNotFoundError):
        await scheduler.remove_cron(cron_id)


async def test_two_clients_converting_at_once_make_one_schedule_and_keep_both_calls(
    scheduler: Any,
    engine: Any,  # noqa: F811
) -> None:
    from conftest import connected

    cron_id = await scheduler.add_cron(TASK, "0 0 1 1 *", {"tag": "race"})
    async with connected(engine, state_database_url=engine.state_database_url) as other:
        await asyncio.gather(scheduler.skip_schedule(cron_id, 1), other.skip_schedule(cron_id, 2))
    found = [s for s in await scheduler.list_schedules(TASK) if s.id == cron_id]
    assert [(s.skips_pending, s.overlap.value) for s in found] == [(3, "allow_all")], found
    await scheduler.remove_schedule(cron_id)
    assert cron_id not in [c.id for c in await scheduler.list_crons(TASK)]


async def test_remove_cron_works_on_a_plain_cron_and_pause_on_an_unknown_id_says_so(scheduler: Any) -> None:
    cron_id = await scheduler.add_cron(TASK, "0 0 1 1 *")
    await scheduler.remove_cron(cron_id)  # never converted
    with pytest.raises(TaskNotFoundError, match="list_schedules"):
        await scheduler.pause_schedule(cron_id)
    assert cron_id not in [s.id for s in await scheduler.list_schedules(TASK)]


async def test_a_declared_cron_made_a_schedule_is_not_declared_again(scheduler: Any, engine: Any) -> None:  # noqa: F811
    from conftest import connected

    task = "conf_declared_cron"
    [declared] = await scheduler.list_crons(task)
    await scheduler.pause_schedule(declared.id, "quiet")
    async with connected(engine, state_database_url=engine.state_database_url) as again:  # declares its crons
        found = await again.list_schedules(task)
    assert [(s.id, s.expression, s.paused) for s in found] == [(declared.id, DECLARED_CRON, True)], found
    await scheduler.resume_schedule(declared.id)
    assert not (await scheduler.get_schedule(declared.id)).paused


async def test_the_book_converts_an_id_once_and_keeps_the_crons_identity_across_changes(
    engine: Any,  # noqa: F811
) -> None:
    store = ScheduleStore(engine.state_database_url)
    book = ScheduleBook(store, f"conv-{uuid.uuid4().hex[:8]}")
    spec = ScheduleSpec(cron="0 * * * *", overlap=Overlap.ALLOW_ALL)
    cron = {"name": "owlclaw-x", "expression": "0 * * * *"}
    try:
        made, effects = await book.convert("c1", "job", spec, {"k": 1}, cron)
        assert made is not None
        nxt = made.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        assert [(k.schedule_id, k.nominal) for k in effects.arm] == [("c1", nxt)]  # after the conversion
        assert await book.convert("c1", "job", spec, {}, cron) == (None, Effects())  # the id exists
        await book.pause("c1", "quiet")
        await book.update("c1", {"cron": "30 * * * *"})
        assert await book.converted("job", cron) == made  # kept across saves
        assert await book.converted("other", cron) is None
        assert await book.converted("job", {**cron, "expression": "*/5 * * * *"}) is None
        info = await book.get("c1")
        assert (info.payload, info.overlap, info.expression, info.paused) == (
            {"k": 1}, Overlap.ALLOW_ALL, "30 * * * *", True
        )  # fmt: skip
        assert (await book.remove("c1"))[0]
        assert await book.converted("job", cron) is None
    finally:
        await store.close()
