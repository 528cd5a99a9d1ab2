"""Schedules on the real engine across faults: an engine restart, a PostgreSQL
restart (the engine's database and the schedules' state on one server, as in
compose), and two client processes acting on one schedule at once.

Every test proves one invariant over a window of the schedule's grid, between
two readings of its row (``handled_until`` and its counters): each nominal time
in the window ran exactly once or was counted (skipped, coalesced), as many
as the counters grew, and nothing ran twice. The tests share one private
PostgreSQL + engine (restarted by the outage tests) and one worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_hatchet_schedules import (
    ANCHOR,
    EVERY_SECOND,
    FIRE_TIMEOUT,
    POLICY,
    SECOND,
    TASK,
    assert_quiet,
    fired,
    lateness,
    schedule_worker,
    until_fired,
)

from owlclaw.backends.hatchet.gate import LATE_GRACE
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.schedules import ScheduleSpec, occurrences
from owlclaw.scheduler.schedules.occurrences import TICK

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
# after an engine or database restart, dispatch resumes up to ~60 s later
# (test_faults_hatchet.py); the occurrences then catch up
OUTAGE_CATCH_UP = 240.0
DOWNTIME = 3.0
# a database down longer than the late grace (30 s): the decisions after it are
# late, so the schedules catch up by their policy (coalesce)
DB_DOWNTIME = 35.0
CLIENT_TIMEOUT = 180.0  # a client process: SDK import, connect, its ops


@pytest.fixture(scope="module")
def engine(local_engine_binaries: None) -> Iterator[Any]:
    """A PostgreSQL + hatchet-lite of this module's own, the schedules' state
    in a second database on the same server: ``(HatchetEngine, pg, engine)``."""
    from conftest import HatchetEngine

    from owlclaw.backends.hatchet.local.engine import LocalEngine
    from owlclaw.backends.hatchet.local.postgres import LocalPostgres

    pg = LocalPostgres().start()
    lite = LocalEngine(pg.database_url("hatchet"), startup_timeout=180)
    try:
        conn = lite.start()
        target = HatchetEngine(
            "private hatchet-lite",
            conn.token,
            conn.host_port,
            conn.server_url,
            "none",
            f"owlclaw-sfault-{uuid.uuid4().hex[:8]}",
            state_database_url=pg.database_url("owlclaw"),
        )
        yield target, pg, lite
    finally:
        lite.stop()
        pg.stop()


@pytest.fixture(scope="module")
def worker(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = schedule_worker(engine[0], tmp_path_factory.mktemp("schedule-fault-workers"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def scheduler(engine: Any, worker: Any) -> AsyncIterator[Any]:
    from conftest import connected

    async with connected(engine[0], state_database_url=engine[0].state_database_url) as s:
        yield s


@dataclasses.dataclass(frozen=True)
class Mark:
    """A schedule's row at one instant: what is decided, and the counters."""

    handled_until: datetime
    fired: int
    skipped: int
    coalesced: int
    buffered: datetime | None  # overlap buffer_one: handled, its fate decided later


async def mark(scheduler: Any, sid: str) -> Mark:
    book = scheduler.schedule_chain.book
    async with book._store.transaction() as conn:
        row = await book._store.fetch(conn, book._ns, sid)
    assert row is not None, f"schedule {sid} is gone"
    return Mark(row.handled_until, row.fired, row.skipped, row.coalesced, row.buffered)


@dataclasses.dataclass
class Window:
    """The occurrences decided between two marks, and what became of them."""

    expected: list[datetime]
    seen: Counter[datetime]
    fired: int
    counted: int  # skipped + coalesced
    coalesced: int

    @property
    def ran(self) -> list[datetime]:
        return [t for t in self.expected if t in self.seen]

    @property
    def holes(self) -> list[datetime]:
        return [t for t in self.expected if t not in self.seen]

    @property
    def doubled(self) -> dict[str, int]:
        return {t.isoformat(): n for t, n in self.seen.items() if n > 1}


async def settle(scheduler: Any, sid: str, spec: ScheduleSpec, before: Mark) -> Window:
    """Pause the schedule, wait until every occurrence it claimed since
    ``before`` ran, and check the invariant over that window."""
    await scheduler.pause_schedule(sid)
    after = await mark(scheduler, sid)
    expected = list(occurrences(spec, before.handled_until, after.handled_until))
    claimed = after.fired - before.fired
    seen = await poll_until(
        lambda: fired(scheduler, sid),
        lambda s: sum(1 for t in expected if t in s) >= claimed,
        timeout=FIRE_TIMEOUT,
        interval=1.0,
        what=f"the runs of the {claimed} occurrences claimed in the window",
    )
    window = Window(
        expected,
        seen,
        claimed,
        after.skipped - before.skipped + after.coalesced - before.coalesced,
        after.coalesced - before.coalesced,
    )
    assert not window.doubled, f"occurrences run more than once: {window.doubled}"
    assert len(window.ran) == claimed, (
        f"{claimed} claimed in the window, {len(window.ran)} ran: {[t.isoformat() for t in window.ran]}"
    )
    assert len(window.holes) == window.counted, (
        f"{window.counted} counted skipped or coalesced, but {len(window.holes)} did not run: "
        f"{[t.isoformat() for t in window.holes]}"
    )
    return window


def figures(late: dict[datetime, float], window: Window) -> str:
    """The closing note's figures. A catch-up is a run that covered coalesced
    occurrences; "late" counts the runs that started past the late grace
    (decided late, or decided on time and started late by the engine)."""
    values = [late[t] for t in window.ran if t in late]
    holes = set(window.holes)
    catch_ups = sum(1 for t in window.ran if t - SECOND in holes) if window.coalesced else 0
    over = sum(1 for v in values if v > LATE_GRACE.total_seconds())
    return (
        f"expected {len(window.expected)}, fired {len(window.ran)}, doubled {len(window.doubled)}, "
        f"coalesced {window.coalesced}, lost {len(window.holes) - window.counted}, "
        f"catch-up runs {catch_ups}, runs over {LATE_GRACE.seconds} s late {over}, "
        f"lateness p50 {statistics.median(values):.1f}s max {max(values):.1f}s"
    )


# --------------------------------------------------------------------------
# engine and PostgreSQL restarted


async def _across_outage(restart: Any, scheduler: Any, what: str, *, late: bool) -> None:
    """Two schedules every second, ``coalesce=False`` and ``True``, across one
    outage; ``late``: the outage is longer than the late grace, so ``True``
    must have coalesced."""
    each = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    one = await scheduler.add_schedule(TASK, every=SECOND, **(POLICY | {"coalesce": True}))
    try:
        for sid in (each, one):
            await until_fired(scheduler, sid, lambda s: len(s) >= 2, f"2 occurrences before the {what}")
        before = {sid: await mark(scheduler, sid) for sid in (each, one)}
        t0 = time.monotonic()
        await asyncio.to_thread(restart)
        down = time.monotonic() - t0
        back = datetime.now(UTC)
        resumed: dict[str, float] = {}
        for sid in (each, one):
            # the chain runs again: an occurrence due 5 s after the return ran
            await poll_until(
                lambda sid=sid: fired(scheduler, sid),  # type: ignore[misc]
                lambda s: any(t > back + 5 * SECOND for t in s),
                timeout=OUTAGE_CATCH_UP,
                interval=1.0,
                what=f"an occurrence after the {what}",
                ignore=(Exception,),  # the engine's API may still be coming up
            )
            resumed[sid] = (datetime.now(UTC) - back).total_seconds()
        windows = {sid: await settle(scheduler, sid, EVERY_SECOND, before[sid]) for sid in (each, one)}
        assert not windows[each].holes, "coalesce=False: an occurrence of the window did not run"
        for name, sid in (("coalesce=False", each), ("coalesce=True", one)):
            starts = await lateness(scheduler, sid)
            print(
                f"{what}: down {down:.1f}s; {name}: {figures(starts, windows[sid])}; "
                f"runs again {resumed[sid]:.0f}s after the return"
            )
        if late:
            assert windows[one].coalesced > 0, "coalesce=True: nothing coalesced after a long outage"
        # coalesce=True: each catch-up fired the latest of what it covered
        holes, ran = windows[one].holes, set(windows[one].ran)
        ends = [t for t in holes if t + SECOND not in holes]
        assert all(t + SECOND in ran for t in ends if t + SECOND <= windows[one].expected[-1]), (
            f"coalesced occurrences not followed by the run that covered them: {holes}"
        )
    finally:
        for sid in (each, one):
            await scheduler.remove_schedule(sid)


async def test_an_engine_restart_loses_and_doubles_no_occurrence(engine: Any, scheduler: Any) -> None:
    """The state database stays up: the worker's links decide each occurrence on
    time (a link runs the next ones itself), and the engine runs them late
    (it dispatches ~60 s after a restart): each once, none coalesced."""
    _, _, lite = engine
    await _across_outage(lambda: lite.restart(downtime=DOWNTIME), scheduler, "engine restart", late=False)


async def test_a_postgres_restart_loses_and_doubles_no_occurrence(engine: Any, scheduler: Any) -> None:
    """The engine's database and the schedules' state go down together, longer
    than the late grace: the decisions after it catch up (coalesce=False: each
    once; True: the latest, the others counted coalesced)."""
    _, pg, _ = engine
    await _across_outage(lambda: pg.restart(downtime=DB_DOWNTIME), scheduler, "PostgreSQL restart", late=True)


# --------------------------------------------------------------------------
# two client processes at once


async def compete(engine: Any, sid: str, ops: list[list[list[Any]]], directory: Path) -> list[list[Any]]:
    """Run one client process per ops list on schedule ``sid``, their ops
    starting at one instant; each one's results, in order."""
    target = engine[0]
    go = directory / f"go-{uuid.uuid4().hex[:6]}"
    settings = {"settings": target.settings(state_database_url=target.state_database_url)}
    procs = []
    for i, mine in enumerate(ops):
        job = directory / f"client-{i}-{go.name}.json"
        job.write_text(json.dumps(settings | {"schedule_id": sid, "go": str(go), "ops": mine}))
        env = target.worker_env(job)
        del env["OWLCLAW_CONFIG"]  # the job file is no config: the settings come in it
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "schedule_client.py"),
                str(job),
                env=env,
                cwd=HERE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )

    async def ready(proc: Any) -> None:
        line = await proc.stdout.readline()
        if line.strip() != b"ready":
            raise AssertionError(f"a client process did not start: {line!r} {await proc.stderr.read()!r}")

    await asyncio.wait_for(asyncio.gather(*(ready(p) for p in procs)), CLIENT_TIMEOUT)
    go.touch()
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
        assert proc.returncode == 0, f"a client process failed: {err.decode()[-2000:]}"
        results.append([json.loads(line)["result"] for line in out.decode().splitlines()])
    return results


async def test_two_client_processes_backfilling_one_range_fire_each_occurrence_once(
    engine: Any, scheduler: Any, tmp_path: Path
) -> None:
    spec = ScheduleSpec(every=2 * SECOND, start=ANCHOR)
    sid = await scheduler.add_schedule(TASK, every=spec.every, **POLICY)
    try:
        now = datetime.now(UTC)
        start, end = now - timedelta(seconds=40), now - timedelta(seconds=10)
        expected = list(occurrences(spec, start - TICK, end - TICK))
        backfill = [["backfill", start.isoformat(), end.isoformat()]]
        (a,), (b,) = await compete(engine, sid, [backfill, backfill], tmp_path)
        print(f"two clients backfilling {len(expected)} occurrences at once: {len(a)} + {len(b)} runs")
        assert not set(a) & set(b), f"both clients fired runs {set(a) & set(b)}"
        assert len(a) + len(b) == len(expected), (a, b, expected)

        async def runs() -> dict[str, datetime]:
            found = {}
            for run in await scheduler.list_tasks(TASK, limit=1000):
                result = run.result
                if isinstance(result, dict) and str(result.get("occurrence_id", "")).startswith(sid + "@"):
                    found[run.id] = datetime.fromisoformat(result["scheduled_for"])
            return found

        ran = await poll_until(
            runs,
            lambda r: set(expected) <= set(r.values()),
            timeout=FIRE_TIMEOUT,
            interval=1.0,
            what=f"the {len(expected)} backfilled occurrences",
        )
        backfilled = {run_id for run_id, t in ran.items() if t in expected}
        assert backfilled == set(a) | set(b), "the runs of the range are not the ids the clients got"
        assert Counter(t for t in ran.values() if t in expected) == dict.fromkeys(expected, 1)
    finally:
        await scheduler.remove_schedule(sid)


async def test_two_client_processes_pausing_resuming_and_skipping_at_once_lose_nothing(
    engine: Any, scheduler: Any, tmp_path: Path
) -> None:
    """Interleaved pause / resume / skip(1) from two processes: every
    occurrence runs once or is counted skipped; all 6 skips are consumed; the
    last of the pauses and resumes is a resume, so it runs on; then removed,
    nothing more runs."""
    sid = await scheduler.add_schedule(TASK, every=SECOND, **POLICY)
    removed = False
    try:
        await until_fired(scheduler, sid, lambda s: len(s) >= 2, "2 occurrences before the clients")
        before = await mark(scheduler, sid)
        cycle = [["pause"], ["sleep", 1.2], ["resume"], ["skip", 1], ["sleep", 0.8]]
        ops = [cycle * 3, [["sleep", 0.5], *cycle * 3]]
        await compete(engine, sid, ops, tmp_path)
        assert not (await scheduler.get_schedule(sid)).paused, "paused after every client resumed"
        info = await poll_until(
            lambda: scheduler.get_schedule(sid),
            lambda i: i.skips_pending == 0,
            timeout=FIRE_TIMEOUT,
            interval=0.5,
            what="the 6 pending skips consumed",
        )
        window = await settle(scheduler, sid, EVERY_SECOND, before)
        late = await lateness(scheduler, sid)
        print(f"two clients pausing, resuming, skipping: {figures(late, window)}; {info.skipped} skipped")
        assert window.counted >= 6, f"6 skips asked, {window.counted} counted"
        await scheduler.resume_schedule(sid)
        await until_fired(
            scheduler,
            sid,
            lambda s: max(s) > datetime.now(UTC) - 3 * SECOND,
            "an occurrence after the last resume",
        )
        await scheduler.remove_schedule(sid)
        removed = True
        await assert_quiet(scheduler, sid, datetime.now(UTC) + SECOND, "a removed schedule fired")
    finally:
        if not removed:
            await scheduler.remove_schedule(sid)
