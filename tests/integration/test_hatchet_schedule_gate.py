"""The Hatchet schedules' core (owlclaw/backends/hatchet/gate.py) on a real
PostgreSQL, no engine: the test plays the engine (``Engine`` below: it arms the
links the book returns, runs them when told, triggers and ends runs) and moves
the book's clock with ``ScheduleBook.clock_offset`` (tests only), so a link
runs exactly on time or minutes late without waiting."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from owlclaw.backends.hatchet.gate import LATE_GRACE, Effects, Fire, Link, ScheduleBook
from owlclaw.backends.hatchet.local.postgres import LocalPostgres, PostgresError, PostgresNotInstalledError
from owlclaw.backends.hatchet.rows import Begin
from owlclaw.backends.hatchet.store import ScheduleStore
from owlclaw.scheduler.errors import InvalidScheduleError, TaskNotFoundError
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec, fire_time, occurrence_id

pytestmark = pytest.mark.integration

S = timedelta(seconds=1)
EVERY = 10 * S


@pytest.fixture(scope="module")
def state_url() -> Iterator[str]:
    try:
        pg = LocalPostgres().start()
    except (PostgresNotInstalledError, PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the schedule gate tests need PostgreSQL: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield pg.database_url("owlclaw")
    finally:
        pg.stop()


@pytest.fixture
async def store(state_url: str) -> AsyncIterator[ScheduleStore]:
    s = ScheduleStore(state_url)
    try:
        yield s
    finally:
        await s.close()


async def set_clock(book: ScheduleBook, t: datetime) -> None:
    """The book's "now" becomes ``t`` (then runs on with the real clock)."""
    book.clock_offset = timedelta(0)
    book.clock_offset = t - await book.now()


class Engine:
    """What the chain does with a book's effects, in memory."""

    def __init__(self, book: ScheduleBook) -> None:
        self.book = book
        self.links: dict[str, Link] = {}
        self.running: set[str] = set()
        self.fired: list[datetime] = []
        self.cancelled: list[str] = []
        self.asked: list[list[str]] = []

    async def active(self, ids: list[str]) -> set[str]:
        self.asked.append(ids)
        return {i for i in ids if i in self.running}

    async def apply(self, effects: Effects) -> Effects:
        for sid in effects.disarm:
            self.links.pop(sid, None)
        self.cancelled += effects.cancel
        self.running -= set(effects.cancel)
        for fire in effects.fire:
            run_id = f"run-{fire.occurrence_id}"
            await self.book.triggered(fire, run_id)
            self.running.add(run_id)
            self.fired.append(fire.nominal)
        for link in effects.arm:
            self.links[link.schedule_id] = link
        return effects

    async def run_link(self, sid: str, late: timedelta = S) -> Effects:
        """The armed link of ``sid`` runs ``late`` after its fire time."""
        link = self.links.pop(sid)
        await set_clock(self.book, link.at + late)
        return await self.apply(await self.book.link(sid, link.nominal, link.gen, self.active))

    async def end(self, sid: str, nominal: datetime) -> Effects:
        self.running.discard(f"run-{occurrence_id(sid, nominal)}")
        return await self.apply(await self.book.ended(sid, nominal))


async def _setup(store: ScheduleStore, **spec: Any) -> tuple[ScheduleBook, Engine, str, datetime]:
    """A fresh namespace, and a schedule every 10 s from an hour ahead, added
    5 s before its first occurrence (overlap allow_all unless given)."""
    spec.setdefault("overlap", Overlap.ALLOW_ALL)
    book = ScheduleBook(store, f"ns-{uuid.uuid4().hex[:8]}")
    base = (await book.now() + timedelta(hours=1)).replace(microsecond=0)
    await set_clock(book, base - 5 * S)
    engine = Engine(book)
    sid, effects = await book.add("digest", ScheduleSpec(every=EVERY, start=base, **spec), {"k": [1]})
    await engine.apply(effects)
    return book, engine, sid, base


def _nominals(effects: Effects) -> list[datetime]:
    return [f.nominal for f in effects.fire]


async def test_an_on_time_link_fires_its_occurrence_and_arms_the_next(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    assert engine.links[sid] == Link(sid, base, base, 1)
    effects = await engine.run_link(sid)
    assert effects.fire == (Fire(sid, "digest", base, occurrence_id(sid, base), {"k": [1]}),)
    assert effects.arm == (Link(sid, base + EVERY, base + EVERY, 1),)
    # within the grace: on time, with the later occurrences already due (each on time too)
    assert _nominals(await engine.run_link(sid, late=LATE_GRACE - 5 * S)) == [
        base + k * EVERY for k in (1, 2, 3)
    ]
    info = await book.get(sid)
    assert (info.fired, info.skipped, info.coalesced) == (4, 0, 0)
    assert info.next_run_at == base + 4 * EVERY
    # past the grace: late, caught up (coalesced into the latest)
    assert _nominals(await engine.run_link(sid, late=LATE_GRACE + S)) == [base + 7 * EVERY]
    info = await book.get(sid)
    assert (info.fired, info.skipped, info.coalesced) == (5, 0, 3)


async def test_duplicate_and_stale_links_fire_nothing(store: ScheduleStore) -> None:
    book, engine, sid, _base = await _setup(store)
    first = engine.links[sid]
    await engine.run_link(sid)
    again = await book.link(sid, first.nominal, first.gen, engine.active)  # the engine fired it twice
    assert again == Effects()
    nxt = engine.links[sid]
    await set_clock(book, nxt.at + S)
    assert await book.link(sid, nxt.nominal, nxt.gen - 1, engine.active) == Effects()  # an older gen
    assert await book.link("no-such-schedule", nxt.nominal, nxt.gen, engine.active) == Effects()
    assert (await book.get(sid)).fired == 1


async def test_two_concurrent_runs_of_one_link_fire_it_once(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    other = ScheduleBook(ScheduleStore(store._url), book._ns)
    try:
        await set_clock(book, base + S)
        other.clock_offset = book.clock_offset
        link = engine.links[sid]
        results = await asyncio.gather(
            *(b.link(sid, link.nominal, link.gen, engine.active) for b in (book, other, book, other))
        )
    finally:
        await other._store.close()
    assert sorted(len(r.fire) for r in results) == [0, 0, 0, 1]
    assert sorted(len(r.arm) for r in results) == [0, 0, 0, 1]
    assert (await book.get(sid)).fired == 1


async def test_a_late_link_coalesces_what_was_missed(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)  # coalesce=True, a day's window (defaults)
    effects = await engine.run_link(sid, late=10 * 60 * S + S // 2)
    assert _nominals(effects) == [base + 600 * S]  # the latest alone
    assert effects.arm[0].nominal == base + 610 * S
    info = await book.get(sid)
    assert (info.fired, info.coalesced, info.skipped) == (1, 60, 0)


async def test_a_late_link_without_coalesce_fires_the_window_and_skips_the_older(
    store: ScheduleStore,
) -> None:
    book, engine, sid, base = await _setup(store, coalesce=False, catchup_window=100 * S)
    effects = await engine.run_link(sid, late=10 * 60 * S + 5 * S)
    assert _nominals(effects) == [base + k * EVERY for k in range(51, 61)]  # the last 100 s
    info = await book.get(sid)
    assert (info.fired, info.skipped, info.coalesced) == (10, 51, 0)  # base .. base+500 s too old
    assert (await book.get(sid)).next_run_at == base + 610 * S


async def test_pause_fires_nothing_and_resume_skips_what_fell_meanwhile(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    await engine.run_link(sid)
    pending = engine.links[sid]
    await set_clock(book, base + 5 * S)
    assert await engine.apply(await book.pause(sid, "ops: provider outage")) == Effects(disarm=(sid,))
    info = await book.get(sid)
    assert info.paused and info.note == "ops: provider outage" and info.next_run_at is None
    await set_clock(book, pending.at + S)
    assert await book.link(sid, pending.nominal, pending.gen, engine.active) == Effects()
    assert await book.preview(sid, base, base + 100 * S, 10) == []
    await set_clock(book, base + 35 * S)
    resumed = await engine.apply(await book.resume(sid))
    assert resumed.arm == (Link(sid, base + 40 * S, base + 40 * S, pending.gen + 2),)
    info = await book.get(sid)
    assert (info.paused, info.note, info.fired, info.skipped) == (False, None, 1, 3)
    assert await book.link(sid, pending.nominal, pending.gen, engine.active) == Effects()
    assert _nominals(await engine.run_link(sid)) == [base + 40 * S]


async def test_an_occurrence_due_before_a_pause_whose_link_had_not_run_fires(store: ScheduleStore) -> None:
    """Found with two clients pausing on the engine's timescale: a pause landing
    between an occurrence's time and its link's run (ms to seconds) voided the
    link, and the resume counted from the pause, so that occurrence neither ran
    nor was counted. Now the pause fires it (memory fires it at its time); one
    unhandled past the grace (an outage) is counted skipped on resume."""
    book, engine, sid, base = await _setup(store)
    pending = engine.links[sid]  # due at base, not run yet
    await set_clock(book, base + S / 2)
    assert _nominals(await engine.apply(await book.pause(sid, None))) == [base]
    await set_clock(book, base + 25 * S)
    await engine.apply(await book.resume(sid))
    info = await book.get(sid)
    assert (info.fired, info.skipped) == (1, 2), info  # base + 10 s, base + 20 s fell in the pause
    assert await book.link(sid, pending.nominal, pending.gen, engine.active) == Effects()
    # paused while its link is past the grace (the engine was down): nothing fires, all counted
    book, engine, sid, base = await _setup(store)
    await set_clock(book, base + 40 * S)
    assert _nominals(await engine.apply(await book.pause(sid, None))) == []
    await set_clock(book, base + 55 * S)
    await engine.apply(await book.resume(sid))
    info = await book.get(sid)
    assert (info.fired, info.skipped) == (0, 6), info  # base .. base + 50 s


async def test_skip_drops_the_next_occurrences(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    await book.skip(sid, 2)
    assert (await book.get(sid)).skips_pending == 2
    assert await book.preview(sid, base, base + 40 * S, 10) == [base + 20 * S, base + 30 * S]
    assert _nominals(await engine.run_link(sid)) == []
    assert _nominals(await engine.run_link(sid)) == []
    assert _nominals(await engine.run_link(sid)) == [base + 20 * S]
    info = await book.get(sid)
    assert (info.skips_pending, info.skipped, info.fired) == (0, 2, 1)


async def test_overlap_skip_drops_an_occurrence_while_the_previous_run_goes(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store, overlap=Overlap.SKIP)
    assert _nominals(await engine.run_link(sid)) == [base]
    assert _nominals(await engine.run_link(sid)) == []  # base's run still going
    await engine.end(sid, base)
    assert _nominals(await engine.run_link(sid)) == [base + 20 * S]
    assert (await book.get(sid)).skipped == 1


async def test_overlap_skip_asks_the_engine_about_runs_never_reported_ended(store: ScheduleStore) -> None:
    _book, engine, sid, base = await _setup(store, overlap=Overlap.SKIP)
    await engine.run_link(sid)
    engine.running.clear()  # the run ended, but its "ended" report was lost
    assert _nominals(await engine.run_link(sid)) == [base + EVERY]
    assert engine.asked == [[f"run-{occurrence_id(sid, base)}"]]


async def test_overlap_buffer_one_keeps_one_and_fires_it_when_the_run_ends(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store, overlap=Overlap.BUFFER_ONE)
    await engine.run_link(sid)
    assert _nominals(await engine.run_link(sid)) == []  # base+10 s buffered
    assert _nominals(await engine.run_link(sid)) == []  # base+20 s: the buffer is full, skipped
    released = await engine.end(sid, base)
    assert _nominals(released) == [base + EVERY]
    info = await book.get(sid)
    assert (info.fired, info.skipped) == (2, 1)


async def test_overlap_allow_all_and_cancel_previous(store: ScheduleStore) -> None:
    _book, engine, sid, base = await _setup(store, overlap=Overlap.ALLOW_ALL)
    await engine.run_link(sid)
    assert _nominals(await engine.run_link(sid)) == [base + EVERY]
    assert engine.asked == []  # allow_all never looks runs up
    _book, engine, sid, base = await _setup(store, overlap=Overlap.CANCEL_PREVIOUS)
    await engine.run_link(sid)
    effects = await engine.run_link(sid)
    assert _nominals(effects) == [base + EVERY]
    assert effects.cancel == (f"run-{occurrence_id(sid, base)}",)


async def test_cancel_previous_cancels_a_run_whose_trigger_was_not_recorded_yet(store: ScheduleStore) -> None:
    """Found on the engine (test_hatchet_schedule_overlap.py): an occurrence
    claimed but whose run id was not recorded yet when the next one fired (two
    due in one step; or the trigger still on its way) was marked ended and
    never cancelled, so two runs went on at once. Now recording its run says
    to cancel it, as memory cancels the previous run at once."""
    book, engine, sid, base = await _setup(store, overlap=Overlap.CANCEL_PREVIOUS)
    link = engine.links.pop(sid)
    await set_clock(book, link.at + LATE_GRACE - 5 * S)  # late within the grace: 3 due, on time
    effects = await book.link(sid, link.nominal, link.gen, engine.active)
    assert _nominals(effects) == [base, base + EVERY, base + 2 * EVERY] and effects.cancel == ()
    # the second run arrives before its trigger was recorded (seen on the engine): superseded
    # already, it may not run (the cancel sent for it may reach the engine before the run)
    assert await book.begin(sid, effects.fire[1].nominal, "engine-run-2") is Begin.SUPERSEDED
    superseded = [await book.triggered(fire, f"run-{fire.occurrence_id}") for fire in effects.fire]
    assert superseded == [True, True, False]  # the chain cancels the first two
    assert await book.begin(sid, effects.fire[0].nominal, "engine-run-1") is Begin.SUPERSEDED
    assert await book.begin(sid, effects.fire[2].nominal, "engine-run-3") is Begin.RUN
    # the next occurrence fires while the last run's trigger is recorded: it is cancelled
    engine.running = {f"run-{effects.fire[-1].occurrence_id}"}
    engine.links[sid] = effects.arm[0]
    nxt = await engine.run_link(sid, late=S)
    assert nxt.cancel == (f"run-{effects.fire[-1].occurrence_id}",)
    # a run that began, then was superseded: cancelled by the decision, not again on a late record
    fire = nxt.fire[0]
    assert await book.begin(sid, fire.nominal, "engine-run") is Begin.RUN
    engine.running = {f"run-{fire.occurrence_id}"}
    assert (await engine.run_link(sid, late=S)).cancel == (f"run-{fire.occurrence_id}",)
    assert not await book.triggered(fire, f"run-{fire.occurrence_id}")


async def test_only_cancel_previous_refuses_a_run_whose_occurrence_ended_before_it_began(
    store: ScheduleStore,
) -> None:
    """A run the engine reports final (or does not list yet) before it began is
    marked ended by the overlap check. Under ``skip`` that run must still run
    when it arrives (refusing it would lose the occurrence); under
    ``cancel_previous`` a later occurrence superseded it."""
    for policy, verdict in ((Overlap.SKIP, Begin.RUN), (Overlap.CANCEL_PREVIOUS, Begin.SUPERSEDED)):
        book, engine, sid, base = await _setup(store, overlap=policy)
        await engine.run_link(sid)
        engine.running.clear()  # the engine does not report the first run going
        assert _nominals(await engine.run_link(sid)) == [base + EVERY], policy
        assert await book.begin(sid, base, "engine-run-1") is verdict, policy


async def test_backfill_fires_only_what_never_fired(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store, overlap=Overlap.ALLOW_ALL)
    await engine.run_link(sid)
    await engine.run_link(sid)
    await set_clock(book, base + 25 * S)
    filled = await engine.apply(await book.backfill(sid, base - 60 * S, base + 30 * S, engine.active))
    assert _nominals(filled) == [base + 20 * S]
    assert await book.backfill(sid, base - 60 * S, base + 30 * S, engine.active) == Effects()
    assert _nominals(await engine.run_link(sid)) == []  # base+20 s: backfilled already
    assert _nominals(await engine.run_link(sid)) == [base + 30 * S]
    assert sorted(engine.fired) == [base + k * EVERY for k in range(4)]


async def test_begin_admits_one_engine_run_per_occurrence(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    await engine.run_link(sid)
    assert await book.begin(sid, base, "engine-run-1") is Begin.RUN
    assert await book.begin(sid, base, "engine-run-2") is Begin.DUPLICATE  # a duplicate trigger
    assert await book.begin(sid, base, "engine-run-1") is Begin.RUN  # the first one's retry
    assert await book.begin(sid, base + EVERY, "engine-run-3") is Begin.DUPLICATE  # never claimed


async def test_an_untriggered_claim_is_offered_again_once(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    link = engine.links.pop(sid)
    await set_clock(book, base + S)
    effects = await book.link(sid, link.nominal, link.gen, engine.active)  # then the chain "crashed"
    assert await book.unstarted(60 * S) == ()
    await set_clock(book, base + 70 * S)
    assert await book.unstarted(60 * S) == effects.fire
    assert await book.unstarted(60 * S) == ()  # handed out once per period
    await book.triggered(effects.fire[0], "run-x")
    await set_clock(book, base + 200 * S)
    assert await book.unstarted(60 * S) == ()


async def test_two_sweepers_take_each_overdue_schedule_once(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    ids = [sid]
    for _ in range(4):
        ids.append((await book.add("digest", ScheduleSpec(every=EVERY, start=base), {}))[0])
    other = ScheduleBook(ScheduleStore(store._url), book._ns)
    try:
        await set_clock(book, base + 300 * S)  # every link lost 5 minutes ago
        other.clock_offset = book.clock_offset
        a, b = await asyncio.gather(book.sweep(120 * S, engine.active), other.sweep(120 * S, engine.active))
        assert await book.sweep(120 * S, engine.active) == Effects()  # nothing overdue any more
    finally:
        await other._store.close()
    fired = sorted(f.schedule_id for f in a.fire + b.fire)
    assert fired == sorted(ids)  # each once, the latest missed occurrence (coalesced)
    assert {f.nominal for f in a.fire + b.fire} == {base + 300 * S}
    assert sorted(link.schedule_id for link in a.arm + b.arm) == sorted(ids)


async def test_update_keeps_pause_and_skips_and_never_refires(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    await engine.run_link(sid)
    await engine.run_link(sid)
    old = engine.links[sid]
    await book.skip(sid, 1)
    await book.pause(sid, "edit")
    with pytest.raises(InvalidScheduleError):
        await book.update(sid, {"every": timedelta(0)})
    effects = await engine.apply(await book.update(sid, {"every": 5 * S, "payload": {"v": 2}}))
    assert effects.arm == () and effects.disarm == (sid,)  # paused: nothing armed
    info = await book.get(sid)
    assert (info.paused, info.note, info.skips_pending, info.every) == (True, "edit", 1, 5 * S)
    await set_clock(book, base + 12 * S)
    await engine.apply(await book.resume(sid))
    assert await book.link(sid, old.nominal, old.gen, engine.active) == Effects()
    assert _nominals(await engine.run_link(sid)) == []  # base+15 s: the pending skip
    fired = await engine.run_link(sid)
    assert fired.fire[0].payload == {"v": 2} and _nominals(fired) == [base + 20 * S]
    await engine.apply(await book.update(sid, {"every": EVERY}))  # back to the old grid
    assert engine.links[sid].nominal == base + 30 * S  # base..base+20 s handled: not again
    assert len(engine.fired) == len(set(engine.fired)) == 3


async def test_unknown_ids_and_listing(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    with pytest.raises(TaskNotFoundError, match="list_schedules"):
        await book.get("nope")
    assert [i.id for i in await book.list(None)] == [sid]
    assert await book.list("other-task") == []
    assert await book.remove(sid) == (True, Effects(disarm=(sid,)))
    assert await book.remove(sid) == (False, Effects())
    assert await book.link(sid, base, 1, engine.active) == Effects()


async def test_a_run_fired_before_its_schedule_was_removed_still_begins_once(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store)
    link = engine.links.pop(sid)
    await set_clock(book, base + S)
    claimed = await book.link(sid, link.nominal, link.gen, engine.active)
    await book.remove(sid)  # before the chain triggered the run
    await book.triggered(claimed.fire[0], "run-1")
    assert await book.begin(sid, base, "engine-run-1") is Begin.RUN
    assert await book.begin(sid, base, "engine-run-2") is Begin.DUPLICATE
    assert await book.ended(sid, base) == Effects()
    assert await book.begin(sid, base, "engine-run-1") is Begin.DUPLICATE  # its row is gone with the schedule
    # a claim never triggered, of a removed schedule, is not offered again
    book2, engine2, sid2, base2 = await _setup(store)
    link = engine2.links.pop(sid2)
    await set_clock(book2, base2 + S)
    await book2.link(sid2, link.nominal, link.gen, engine2.active)
    await book2.remove(sid2)
    await set_clock(book2, base2 + 100 * S)
    assert await book2.unstarted(60 * S) == ()
    assert await book2.begin(sid2, base2, "engine-run-1") is Begin.DUPLICATE


async def test_the_sweeper_releases_a_buffered_occurrence_whose_run_ended_unreported(
    store: ScheduleStore,
) -> None:
    book, engine, sid, base = await _setup(store, overlap=Overlap.BUFFER_ONE)
    await engine.run_link(sid)
    await engine.run_link(sid)  # base+10 s buffered behind base's run
    engine.running.clear()  # base's run ended; its report was lost
    swept = await engine.apply(await book.sweep(120 * S, engine.active))
    assert _nominals(swept) == [base + EVERY] and swept.arm == ()  # the chain's link stays armed
    assert await book.sweep(120 * S, engine.active) == Effects()


async def test_a_buffered_occurrence_is_skipped_if_paused_when_the_run_ends(store: ScheduleStore) -> None:
    book, engine, sid, base = await _setup(store, overlap=Overlap.BUFFER_ONE)
    await engine.run_link(sid)
    await engine.run_link(sid)
    await book.pause(sid, None)
    assert await engine.end(sid, base) == Effects()
    info = await book.get(sid)
    assert (info.fired, info.skipped) == (1, 1)


async def test_jitter_delays_the_link_not_the_nominal_time(store: ScheduleStore) -> None:
    _book, engine, sid, base = await _setup(store, jitter=8.0)
    link = engine.links[sid]
    assert link.nominal == base and link.at == fire_time(
        ScheduleSpec(every=EVERY, start=base, jitter=8.0), sid, base
    )
    assert link.at != base  # 8 s of jitter: the first occurrence is offset
    effects = await engine.run_link(sid)
    assert _nominals(effects) == [base]


async def test_only_the_newest_occurrence_rows_are_kept(
    store: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from owlclaw.backends.hatchet import rules

    monkeypatch.setattr(rules, "FIRED_MEMORY", 3)
    monkeypatch.setattr(rules, "_PRUNE_EVERY", 1)
    book, engine, sid, base = await _setup(store)
    await set_clock(book, base + 60 * S)
    await engine.apply(await book.backfill(sid, base, base + 60 * S, engine.active))
    async with store.transaction() as conn:
        cur = await conn.execute(
            "SELECT nominal FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s "
            "ORDER BY nominal",
            (book._ns, sid),
        )
        kept = [r["nominal"] for r in await cur.fetchall()]
    assert kept == [base + k * EVERY for k in (3, 4, 5)]


async def test_a_nominal_time_in_any_zone_is_the_same_instant(store: ScheduleStore) -> None:
    from zoneinfo import ZoneInfo

    book, engine, sid, base = await _setup(store)
    link = engine.links.pop(sid)
    await set_clock(book, base + S)
    paris = link.nominal.astimezone(ZoneInfo("Europe/Paris"))
    assert _nominals(await book.link(sid, paris, link.gen, engine.active)) == [base]
    assert await book.begin(sid, paris, "engine-run-1") is Begin.RUN
    with pytest.raises(InvalidScheduleError, match="aware"):
        await book.begin(sid, base.replace(tzinfo=None), "engine-run-1")
