"""The four overlap policies on the real engine: a run lasting 3 s on a
schedule every second, the real-time form of memory's conformance tests
(``ScheduleConformance.test_overlap_*``: a 150 s run every minute).

The four schedules run at once, for about 12 occurrences each, then are
paused; each test checks one policy's runs. Over the window between two
readings of a schedule's row, every occurrence ran once or was counted
skipped, as many as the counter grew, and nothing ran twice. Times compare
the nominal times with the engine's start and end of each run, within
``SLACK`` (the engine reports a run's end, and the worker tells the state
database, a little after the code returns).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_hatchet_schedule_faults import Mark, mark
from test_hatchet_schedules import ANCHOR, EVERY_SECOND, FIRE_TIMEOUT, SECOND, TASK, schedule_worker

from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.schedules import occurrences

pytestmark = pytest.mark.integration

RUN = 3.0  # seconds each run lasts
WINDOW = 12 * SECOND  # of occurrences watched per schedule
SLACK = timedelta(seconds=1.5)
POLICIES = ("skip", "buffer_one", "allow_all", "cancel_previous")
FINAL = {TaskState.SUCCEEDED, TaskState.CANCELLED, TaskState.FAILED}


@dataclasses.dataclass
class Seen:
    """One policy's schedule over the window."""

    expected: list[datetime]  # its nominal times in the window
    runs: list[TaskInfo]  # the runs of those, by nominal time
    before: list[TaskInfo]  # the runs of the occurrences before the window
    fired: int  # counters' growth
    skipped: int

    @property
    def nominals(self) -> list[datetime]:
        return [r.scheduled_at for r in self.runs if r.scheduled_at is not None]

    @property
    def holes(self) -> list[datetime]:
        ran = set(self.nominals)
        return [t for t in self.expected if t not in ran]

    def check_counted(self) -> None:
        """Each occurrence ran at most once; those that did not are counted."""
        assert len(set(self.nominals)) == len(self.nominals), f"an occurrence ran twice: {self.nominals}"
        assert len(self.runs) == self.fired, f"{self.fired} fired, {len(self.runs)} runs: {self.nominals}"
        assert len(self.holes) == self.skipped, (
            f"{self.skipped} counted skipped, {len(self.holes)} did not run: {self.holes}"
        )

    def pairs(self) -> list[tuple[TaskInfo, TaskInfo]]:
        return list(zip(self.runs, self.runs[1:], strict=False))


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Any:
    if hatchet_engine.state_database_url is None:
        pytest.skip("no state database for this engine: set OWLCLAW_STATE_DATABASE_URL")
    return dataclasses.replace(hatchet_engine, namespace=f"owlclaw-overlap-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def seen(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Seen]]:
    """The four schedules, run at once on one worker; each one's window."""
    worker = schedule_worker(engine, tmp_path_factory.mktemp("overlap-workers"))
    try:
        yield asyncio.run(observe(engine))
    finally:
        worker.stop()


async def observe(engine: Any) -> dict[str, Seen]:
    from conftest import connected

    async with connected(engine, state_database_url=engine.state_database_url) as scheduler:
        ids = {
            policy: await scheduler.add_schedule(
                TASK,
                {"seconds": RUN, "policy": policy},
                every=SECOND,
                overlap=policy,
                coalesce=False,
                start=ANCHOR,
            )
            for policy in POLICIES
        }
        try:
            return dict(
                zip(
                    POLICIES,
                    await asyncio.gather(*(watch(scheduler, ids[p], p) for p in POLICIES)),
                    strict=True,
                )
            )
        finally:
            for sid in ids.values():
                await scheduler.remove_schedule(sid)


async def watch(scheduler: Any, sid: str, policy: str) -> Seen:
    async def runs() -> list[TaskInfo]:
        found = [
            r
            for r in await scheduler.list_tasks(TASK, limit=1000)
            if r.payload == {"seconds": RUN, "policy": policy}
        ]
        return sorted(found, key=lambda r: r.scheduled_at)

    await poll_until(
        runs,
        lambda r: any(i.started_at for i in r),
        timeout=FIRE_TIMEOUT,
        interval=0.5,
        what=f"a {policy} run",
    )
    before = await mark(scheduler, sid)
    await poll_until(
        lambda: mark(scheduler, sid),
        lambda m: m.handled_until >= before.handled_until + WINDOW,
        timeout=FIRE_TIMEOUT,
        interval=0.5,
        what=f"{WINDOW.seconds} s of {policy} occurrences decided",
    )
    await scheduler.pause_schedule(sid)
    after = await mark(scheduler, sid)
    expected = list(occurrences(EVERY_SECOND, before.handled_until, after.handled_until))
    if before.buffered is not None:  # buffered before the window: it runs (or is skipped) in it
        expected.insert(0, before.buffered)

    def window(found: list[TaskInfo]) -> list[TaskInfo]:
        return [r for r in found if r.scheduled_at in expected]

    def settled(found: list[TaskInfo]) -> bool:
        mine = window(found)
        return len(mine) >= after.fired - before.fired and all(r.state in FINAL for r in mine)

    found = await poll_until(
        runs, settled, timeout=FIRE_TIMEOUT, interval=1.0, what=f"every {policy} run of the window final"
    )
    # buffer_one: the occurrence buffered at the pause is counted skipped when its runs end
    final: Mark = await poll_until(
        lambda: mark(scheduler, sid),
        lambda m: m.skipped - before.skipped + m.fired - before.fired >= len(expected),
        timeout=30,
        interval=0.5,
        what=f"each {policy} occurrence of the window fired or counted",
    )
    earlier = [r for r in found if r.scheduled_at is not None and r.scheduled_at < expected[0]]
    return Seen(expected, window(found), earlier, final.fired - before.fired, final.skipped - before.skipped)


def report(policy: str, s: Seen) -> None:
    starts = [
        (r.started_at - r.scheduled_at).total_seconds() for r in s.runs if r.started_at and r.scheduled_at
    ]
    took = [(r.finished_at - r.started_at).total_seconds() for r in s.runs if r.finished_at and r.started_at]
    print(
        f"overlap {policy}: {len(s.expected)} occurrences, {len(s.runs)} runs, {s.skipped} skipped; "
        f"start - nominal, s: {[round(x, 1) for x in starts]}; run, s: {[round(x, 1) for x in took]}; "
        f"states {[r.state.value for r in s.runs]}"
    )


def test_skip_starts_no_run_while_one_is_going(seen: dict[str, Seen]) -> None:
    s = seen["skip"]
    report("skip", s)
    s.check_counted()
    assert len(s.runs) >= 2 and s.skipped >= len(s.runs), "a 3 s run every second skips most"
    for prev, nxt in s.pairs():
        assert prev.finished_at is not None and nxt.scheduled_at is not None
        # the next to fire was due after the previous ended: none ran at once
        assert nxt.scheduled_at >= prev.finished_at - SLACK, (prev, nxt)
    for hole in s.holes:  # each skipped one was due while a run was going
        going = [r for r in s.before + s.runs if r.finished_at and r.scheduled_at]
        assert any(r.scheduled_at <= hole <= r.finished_at + SLACK for r in going), hole
    assert {r.state for r in s.runs} == {TaskState.SUCCEEDED}


def test_buffer_one_keeps_one_waiting_and_skips_the_rest(seen: dict[str, Seen]) -> None:
    s = seen["buffer_one"]
    report("buffer_one", s)
    s.check_counted()
    assert {r.state for r in s.runs} == {TaskState.SUCCEEDED}
    assert len(s.runs) >= 2 and s.skipped >= 1
    for prev, nxt in s.pairs():
        assert prev.finished_at is not None and nxt.started_at is not None and nxt.scheduled_at is not None
        # the next was due while the previous ran (it waited), and started when it ended
        assert nxt.scheduled_at < prev.finished_at, (prev, nxt)
        assert prev.finished_at - SLACK <= nxt.started_at <= prev.finished_at + 2 * SLACK, (prev, nxt)


def test_allow_all_starts_every_occurrence_while_others_run(seen: dict[str, Seen]) -> None:
    s = seen["allow_all"]
    report("allow_all", s)
    s.check_counted()
    assert not s.holes and s.skipped == 0
    assert {r.state for r in s.runs} == {TaskState.SUCCEEDED}
    overlapping = [
        (a, b) for a, b in s.pairs() if a.finished_at and b.started_at and b.started_at < a.finished_at
    ]
    assert len(overlapping) >= len(s.runs) // 2, "3 s runs every second do not overlap"


def test_cancel_previous_starts_every_occurrence_and_cancels_the_one_going(seen: dict[str, Seen]) -> None:
    s = seen["cancel_previous"]
    report("cancel_previous", s)
    s.check_counted()
    assert not s.holes and s.skipped == 0
    states = [r.state for r in s.runs]
    # each run is cancelled by the next occurrence; the last, with nothing after it, succeeds
    assert states == [TaskState.CANCELLED] * (len(states) - 1) + [TaskState.SUCCEEDED], states
    for prev, nxt in s.pairs():
        assert prev.finished_at is not None and nxt.scheduled_at is not None
        # cancelled by the next occurrence: not before that one was due
        assert prev.finished_at >= nxt.scheduled_at - SLACK, (prev, nxt)
