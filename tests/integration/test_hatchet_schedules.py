"""Schedules on the real engine: the chain of links, the state in PostgreSQL
(``state_database_url``), in real time at the seconds scale.

Each occurrence is seen through the runs of ``conf_occurrence`` (the
conformance app), which return ``ctx.scheduled_for`` and
``ctx.occurrence_id``: "exactly once" means one run with a result per
nominal time, and every nominal time of the schedule's grid between the
first and the last one seen. Every schedule here is ``overlap="allow_all"``
(the default ``skip`` may skip an occurrence whose predecessor's end the
engine has not reported yet) and ``coalesce=False``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import CONFORMANCE_APP, WorkerProcess, worker_command

from owlclaw.scheduler.polling import PollTimeoutError, poll_until
from owlclaw.scheduler.schedules import ScheduleSpec, occurrences
from owlclaw.scheduler.schedules.occurrences import TICK

TASK = "conf_occurrence"
SECOND = timedelta(seconds=1)
FIRE_TIMEOUT = 120.0  # a fresh engine hands out the first runs slowly (docs/hatchet.md)
QUIET = 8.0  # seconds watched for runs that must not come (links fire up to ~5 s late)
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)  # every= counts from a start
POLICY: dict[str, Any] = {"overlap": "allow_all", "coalesce": False, "start": ANCHOR}
EVERY_SECOND = ScheduleSpec(every=timedelta(seconds=1), start=ANCHOR)


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Any:
    if hatchet_engine.state_database_url is None:
        pytest.skip("no state database for this engine: set OWLCLAW_STATE_DATABASE_URL")
    return dataclasses.replace(hatchet_engine, namespace=f"owlclaw-sched-{uuid.uuid4().hex[:8]}")


def schedule_worker(engine: Any, directory: Path, **settings: Any) -> WorkerProcess:
    """A conformance worker with schedules (the state database), ACTIVE when returned."""
    name = f"sw{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / f"{name}.yaml"
    section = engine.settings(worker_name=name, state_database_url=engine.state_database_url, **settings)
    config_path.write_text(yaml.safe_dump({"scheduler": {"backend": "hatchet", "hatchet": section}}))
    worker = WorkerProcess(
        worker_command(CONFORMANCE_APP), engine.worker_env(config_path), directory / f"{name}.log"
    )
    worker.start().wait_active(engine, name)
    return worker


@pytest.fixture(scope="module")
def worker(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = schedule_worker(engine, tmp_path_factory.mktemp("schedule-workers"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def scheduler(engine: Any, worker: WorkerProcess) -> AsyncIterator[Any]:
    from conftest import connected

    async with connected(engine, state_database_url=engine.state_database_url) as s:
        yield s


async def fired(scheduler: Any, schedule_id: str) -> Counter[datetime]:
    """Nominal time -> how many runs of that occurrence ran the task."""
    seen: Counter[datetime] = Counter()
    for run in await scheduler.list_tasks(TASK, limit=1000):
        result = run.result
        if isinstance(result, dict) and str(result.get("occurrence_id", "")).startswith(schedule_id + "@"):
            seen[datetime.fromisoformat(result["scheduled_for"])] += 1
    return seen


async def lateness(scheduler: Any, schedule_id: str) -> dict[datetime, float]:
    """Nominal time -> seconds from it to its run's start (the engine's)."""
    found = {}
    for run in await scheduler.list_tasks(TASK, limit=1000):
        result = run.result
        if isinstance(result, dict) and str(result.get("occurrence_id", "")).startswith(schedule_id + "@"):
            if run.started_at is not None:
                nominal = datetime.fromisoformat(result["scheduled_for"])
                found[nominal] = (run.started_at - nominal).total_seconds()
    return dict(sorted(found.items()))


async def until_fired(scheduler: Any, schedule_id: str, done: Any, what: str) -> Counter[datetime]:
    return await poll_until(
        lambda: fired(scheduler, schedule_id), done, timeout=FIRE_TIMEOUT, interval=1.0, what=what
    )


def grid(spec: ScheduleSpec, first: datetime, last: datetime) -> list[datetime]:
    """The schedule's nominal times from ``first`` to ``last``, both included."""
    return list(occurrences(spec, first - TICK, last))


def gaps(seen: Counter[datetime], spec: ScheduleSpec, count: int) -> list[datetime] | None:
    """The first ``count`` nominal times of the grid from the first one seen
    that did not run; None until the last of them ran (the listing may show
    a run before the one just before it)."""
    if not seen:
        return None
    expected = list(occurrences(spec, min(seen) - TICK, max(seen), limit=count))
    if len(expected) < count:
        return None
    return [t for t in expected if t not in seen]


def nth(spec: ScheduleSpec, seen: Counter[datetime], count: int) -> datetime:
    """The ``count``-th nominal time of the grid from the first one seen."""
    return list(occurrences(spec, min(seen) - TICK, max(seen), limit=count))[-1]


def covered(spec: ScheduleSpec, count: int, missing: int = 0) -> Any:
    """A ``poll_until`` condition: the first ``count`` occurrences ran, but ``missing``."""
    return lambda seen: (found := gaps(seen, spec, count)) is not None and len(found) == missing


def assert_once_each(
    seen: Counter[datetime], spec: ScheduleSpec, until: datetime | None = None, missing: int = 0
) -> list[datetime]:
    """Each nominal seen ran once, on the grid, and ``missing`` of the grid
    from the first seen to ``until`` (default: the last seen) did not run;
    returns those."""
    doubled = {t.isoformat(): n for t, n in seen.items() if n > 1}
    assert not doubled, f"occurrences run more than once: {doubled}"
    on_grid = set(grid(spec, min(seen), max(seen)))
    assert set(seen) <= on_grid, f"runs at times off the schedule: {sorted(set(seen) - on_grid)}"
    holes = [t for t in grid(spec, min(seen), until or max(seen)) if t not in seen]
    assert len(holes) == missing, (
        f"expected {missing} missing occurrences, missing {[t.isoformat() for t in holes]}"
    )
    return holes


async def assert_quiet(scheduler: Any, schedule_id: str, after: datetime, why: str) -> None:
    """No occurrence after ``after`` runs within QUIET seconds."""
    try:
        late = await poll_until(
            lambda: fired(scheduler, schedule_id),
            lambda seen: any(t > after for t in seen),
            timeout=QUIET,
            interval=1.0,
            what="a run that must not come",
        )
    except PollTimeoutError:
        return
    raise AssertionError(
        f"{why}: runs of occurrences after {after.isoformat()}: {sorted(t for t in late if t > after)}"
    )


async def test_every_second_fires_each_occurrence_once_with_its_nominal_time(scheduler: Any) -> None:
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    seen = await until_fired(scheduler, sid, covered(EVERY_SECOND, 10), "10 occurrences, every=1s")
    last = nth(EVERY_SECOND, seen, 10)
    assert_once_each(seen, EVERY_SECOND, until=last)  # scheduled_for on the grid
    info = await scheduler.get_schedule(sid)
    assert info.fired >= 10 and not info.paused, info
    await scheduler.remove_schedule(sid)
    # on time once going (a fresh engine may hand out the first runs seconds late, then
    # they catch up): a link runs the next ones itself, or the engine's 5 s poll would
    # make each later than the one before
    late = {t: s for t, s in (await lateness(scheduler, sid)).items() if t <= last}
    print(f"every=1s: nominal -> run start, seconds: {list(late.values())}")  # docs/hatchet.md's figures
    assert all(s < 2.0 for s in list(late.values())[-3:]), f"the last runs start late: {late}"


async def test_a_zoned_seconds_cron_fires_at_the_instants_occurrences_gives(scheduler: Any) -> None:
    spec = ScheduleSpec(cron="*/2 * * * * *", timezone="Asia/Kolkata")
    sid = await scheduler.add_schedule(
        TASK, cron=spec.cron, timezone=spec.timezone, overlap="allow_all", coalesce=False
    )
    seen = await until_fired(scheduler, sid, covered(spec, 4), "4 occurrences of */2 s in Asia/Kolkata")
    assert_once_each(seen, spec, until=nth(spec, seen, 4))
    info = await scheduler.get_schedule(sid)
    assert (info.timezone, info.expression) == ("Asia/Kolkata", "*/2 * * * * *"), info
    await scheduler.remove_schedule(sid)


async def test_pause_with_a_note_stops_firing_and_resume_starts_again(scheduler: Any) -> None:
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    await until_fired(scheduler, sid, lambda s: len(s) >= 2, "2 occurrences before the pause")
    await scheduler.pause_schedule(sid, note="ops: provider outage")
    paused_at = datetime.now(UTC)
    info = await scheduler.get_schedule(sid)
    assert (info.paused, info.note, info.next_run_at) == (True, "ops: provider outage", None), info
    listed = [s for s in await scheduler.list_schedules(TASK) if s.id == sid]
    assert [s.paused for s in listed] == [True], listed
    await assert_quiet(scheduler, sid, paused_at + SECOND, "a paused schedule fired")
    await scheduler.resume_schedule(sid)
    resumed_at = datetime.now(UTC)
    seen = await until_fired(
        scheduler, sid, lambda s: any(t > resumed_at for t in s), "an occurrence after the resume"
    )
    info = await scheduler.get_schedule(sid)
    assert not info.paused and info.note is None and info.skipped >= 1, info  # counted: skipped/paused
    assert all(n == 1 for n in seen.values()), seen
    await scheduler.remove_schedule(sid)


async def test_skip_two_skips_the_next_two_occurrences(scheduler: Any) -> None:
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    before = await until_fired(scheduler, sid, lambda s: len(s) >= 2, "2 occurrences before the skip")
    await scheduler.skip_schedule(sid, 2)
    assert (await scheduler.get_schedule(sid)).skips_pending in (0, 1, 2)
    # the skipped ones are among the next few undecided: 8 past the last seen leaves room
    count = len(grid(EVERY_SECOND, min(before), max(before))) + 8
    seen = await until_fired(
        scheduler,
        sid,
        covered(EVERY_SECOND, count, missing=2),
        f"{count} occurrences, 2 skipped",
    )
    holes = assert_once_each(seen, EVERY_SECOND, until=nth(EVERY_SECOND, seen, count), missing=2)
    assert holes[1] - holes[0] == SECOND, f"the two skipped occurrences are not consecutive: {holes}"
    info = await scheduler.get_schedule(sid)
    assert (info.skipped, info.skips_pending) == (2, 0), info
    await scheduler.remove_schedule(sid)


async def test_a_removed_schedule_fires_no_more(scheduler: Any) -> None:
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    await until_fired(scheduler, sid, lambda s: len(s) >= 2, "2 occurrences before the removal")
    await scheduler.remove_schedule(sid)
    removed_at = datetime.now(UTC)
    assert sid not in [s.id for s in await scheduler.list_schedules(TASK)]
    await assert_quiet(scheduler, sid, removed_at + SECOND, "a removed schedule fired")


async def test_backfill_fires_past_occurrences_once_and_a_second_backfill_none(scheduler: Any) -> None:
    spec = ScheduleSpec(every=2 * SECOND, start=ANCHOR)
    sid = await scheduler.add_schedule(TASK, every=spec.every, **POLICY)
    now = datetime.now(UTC)
    start, end = now - timedelta(seconds=30), now - timedelta(seconds=10)
    expected = list(occurrences(spec, start - TICK, end - TICK))
    ids = await scheduler.backfill_schedule(sid, start, end)
    assert len(ids) == len(expected) == 10, (ids, expected)
    seen = await until_fired(
        scheduler, sid, lambda s: all(t in s for t in expected), f"the {len(expected)} backfilled occurrences"
    )
    assert {t: seen[t] for t in expected} == dict.fromkeys(expected, 1)
    assert await scheduler.backfill_schedule(sid, start, end) == [], "a second backfill fired again"
    await assert_quiet_window(scheduler, sid, expected)
    await scheduler.remove_schedule(sid)


async def assert_quiet_window(scheduler: Any, sid: str, expected: list[datetime]) -> None:
    try:
        again = await poll_until(
            lambda: fired(scheduler, sid),
            lambda s: any(s[t] > 1 for t in expected),
            timeout=QUIET,
            interval=1.0,
            what="a backfilled occurrence run twice",
        )
    except PollTimeoutError:
        return
    raise AssertionError(f"backfilled occurrences run twice: {[t for t in expected if again[t] > 1]}")


async def test_a_worker_restart_in_the_middle_loses_and_doubles_nothing(
    engine: Any, scheduler: Any, worker: WorkerProcess, tmp_path: Path
) -> None:
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    before = await until_fired(scheduler, sid, lambda s: len(s) >= 3, "3 occurrences before the restart")
    await asyncio.to_thread(worker.stop)  # SIGTERM: drains its runs and stops
    stopped_at = datetime.now(UTC)
    # links fall due while no worker runs; they wait for the next one
    second = await asyncio.to_thread(schedule_worker, engine, tmp_path / "second")
    try:
        wanted = grid(EVERY_SECOND, min(before), stopped_at + 5 * SECOND)
        seen = await until_fired(
            scheduler,
            sid,
            lambda s: all(t in s for t in wanted),
            f"every occurrence from {wanted[0]:%H:%M:%S} to {wanted[-1]:%H:%M:%S} across the restart",
        )
        assert_once_each(seen, EVERY_SECOND, until=wanted[-1])
    finally:
        await scheduler.remove_schedule(sid)
        await asyncio.to_thread(second.stop)
        await asyncio.to_thread(worker.start().wait_active, engine, worker.log_path.stem)


async def test_a_sigkilled_worker_loses_and_doubles_nothing(
    engine: Any, scheduler: Any, worker: WorkerProcess, tmp_path: Path
) -> None:
    """SIGKILL mid-chain: the link run in flight, a claimed occurrence not yet
    triggered, a user run started: the engine's backup links, the run the
    engine hands to the next worker and the sweeper leave each occurrence once."""
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    before = await until_fired(scheduler, sid, lambda s: len(s) >= 3, "3 occurrences before the kill")
    await asyncio.to_thread(worker.kill)
    killed_at = datetime.now(UTC)
    second = await asyncio.to_thread(schedule_worker, engine, tmp_path / "second")
    try:
        wanted = grid(EVERY_SECOND, min(before), killed_at + 10 * SECOND)
        seen = await poll_until(
            lambda: fired(scheduler, sid),
            lambda s: all(t in s for t in wanted),
            timeout=240.0,  # a claim cut short is re-triggered by the sweeper (30 s + a 15 s pass)
            interval=2.0,
            what=f"every occurrence from {wanted[0]:%H:%M:%S} to {wanted[-1]:%H:%M:%S} after a SIGKILL",
        )
        assert_once_each(seen, EVERY_SECOND, until=wanted[-1])
    finally:
        await scheduler.remove_schedule(sid)
        await asyncio.to_thread(second.stop)
        await asyncio.to_thread(worker.start().wait_active, engine, worker.log_path.stem)


async def test_the_sweeper_fires_what_a_lost_link_missed(
    engine: Any, scheduler: Any, worker: WorkerProcess, tmp_path: Path
) -> None:
    """The engine loses a link (here: deleted behind owlclaw's back): a
    worker's sweeper catches the schedule up once the link is
    ``schedule_sweep_slack_seconds`` overdue, each missed occurrence once
    (coalesce=False), and re-arms it."""
    from owlclaw.backends.hatchet.chain import SWEEP_EVERY

    slack = 20.0  # a second worker whose sweeper acts first (the module's waits 90 s)
    sweeper = await asyncio.to_thread(
        schedule_worker, engine, tmp_path / "sweeper", schedule_sweep_slack_seconds=slack
    )
    every = 10 * SECOND  # slower than a link follows or kicks (6 s): only the engine's link is armed
    spec = ScheduleSpec(every=every, start=ANCHOR)
    sid = await scheduler.add_schedule(TASK, every=every, **POLICY)
    first = await until_fired(scheduler, sid, lambda s: len(s) >= 1, "the first occurrence")

    def just_after_an_on_time_run(late: dict[datetime, float]) -> bool:
        # a link armed under 6 s ahead also runs at once (a kick), which deleting the
        # engine's link does not stop: an occurrence that started within 2 s of its time
        # armed the next link 8 s ahead or more, an engine link only, due in over 6 s
        if not late:
            return False
        newest = max(late)
        return late[newest] < 2.0 and datetime.now(UTC) - newest < 4 * SECOND

    late = await poll_until(
        lambda: lateness(scheduler, sid),
        just_after_an_on_time_run,
        timeout=FIRE_TIMEOUT,
        interval=0.5,
        what="an occurrence that started within 2 s of its time, seen within 4 s of it",
    )
    assert await scheduler.schedule_chain.disarm(sid) >= 1, "no pending link to delete"
    lost_from = max(late) + every
    wanted = grid(spec, min(first), lost_from + 3 * every)
    seen = await poll_until(
        lambda: fired(scheduler, sid),
        lambda s: all(t in s for t in wanted),
        timeout=slack + SWEEP_EVERY + 120,
        interval=2.0,
        what=f"the occurrences from {wanted[0]:%H:%M:%S} to {wanted[-1]:%H:%M:%S} after the link was lost",
    )
    try:
        assert_once_each(seen, spec, until=wanted[-1])
        assert "schedule sweeper caught up" in sweeper.log_tail(400), sweeper.log_tail(40)
    finally:
        await scheduler.remove_schedule(sid)
        await asyncio.to_thread(sweeper.stop)
