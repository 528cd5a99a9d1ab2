"""The schedule rules on one locked row: memory's (``owlclaw/backends/memory/
schedules.py``) in the terms of ``store.py``. ``gate.ScheduleBook`` calls them
inside its transactions; what they decide for the engine is an ``Effects``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.hatchet.rows import ScheduleRow
from owlclaw.backends.hatchet.store import Conn, ScheduleStore
from owlclaw.scheduler.errors import TaskNotFoundError
from owlclaw.scheduler.models import ScheduleInfo
from owlclaw.scheduler.observability.metrics import record_occurrences
from owlclaw.scheduler.schedules import Overlap, catch_up, fire_time, occurrence_id
from owlclaw.scheduler.schedules.occurrences import Walker

__all__ = [
    "FIRED_MEMORY",
    "LATE_GRACE",
    "ActiveRuns",
    "Effects",
    "Fire",
    "Link",
    "Rules",
    "Step",
    "emit",
    "fire_of",
    "info_of",
    "links_of",
    "require_row",
    "skipped",
]

log = logging.getLogger("owlclaw.scheduler.schedules")

#: A link that runs more than this after its fire time was missed (an outage):
#: its occurrences go through ``catch_up``. The engine's ticker fires up to ~5 s late.
LATE_GRACE = timedelta(seconds=30)
#: Fired occurrences remembered per schedule (a backfill never fires them again).
FIRED_MEMORY = 10_000
_PRUNE_EVERY = 100  # fires between two prunes of a schedule's occurrence rows
_Running = list[tuple[datetime, str | None]]  # (nominal, run id or None if not triggered)

#: Given owlclaw run ids of fired occurrences not known final, those still active.
ActiveRuns = Callable[[list[str]], Awaitable[set[str]]]


@dataclass(frozen=True, slots=True)
class Fire:
    """An occurrence claimed for firing: exactly one user run is triggered for it."""

    schedule_id: str
    task_name: str
    nominal: datetime  # aware UTC
    occurrence_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Link:
    """An engine scheduled run of the internal link workflow, due at ``at``."""

    schedule_id: str
    nominal: datetime
    at: datetime  # fire_time(spec, schedule_id, nominal)
    gen: int  # the row's generation when armed; a link of another generation is a no-op


@dataclass(frozen=True, slots=True)
class Effects:
    """Engine work to do after the transaction committed, in this order:
    ``disarm`` (delete pending links of these schedules, best effort), then
    ``cancel`` (owlclaw run ids), ``fire`` (trigger one run each) and ``arm``."""

    fire: tuple[Fire, ...] = ()
    arm: tuple[Link, ...] = ()
    cancel: tuple[str, ...] = ()
    disarm: tuple[str, ...] = ()


@dataclass(eq=False)
class Step:
    """One schedule's decision inside a transaction, and what it produced."""

    conn: Conn
    row: ScheduleRow
    now: datetime
    active: ActiveRuns | None
    fires: list[Fire] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    events: list[tuple[str, str, int, datetime | None]] = field(default_factory=list)
    running: _Running | None = None  # not known final (loaded once)


class Rules:
    """The rules on a locked row (the base of ``ScheduleBook``).

    ``clock_offset`` is for tests only: it is added to the database's clock, so
    a test can make a link late without waiting. Leave it at zero otherwise.
    """

    def __init__(self, store: ScheduleStore, namespace: str, *, clock_offset: timedelta = timedelta(0)):
        self._store = store
        self._ns = namespace
        self.clock_offset = clock_offset

    async def _now(self, conn: Conn) -> datetime:
        return await self._store.now(conn) + self.clock_offset

    async def _advance(self, step: Step, horizon: datetime, *, late: bool = True) -> None:
        """Handle the occurrences whose fire time is at or before ``horizon``, as
        memory's heap would at ``now``: on time, each fires; late, ``catch_up``
        (or, without ``late``, stop there)."""
        row, walker = step.row, Walker(step.row.spec)
        while (nxt := walker.next_after(row.handled_until)) is not None:
            due = fire_time(row.spec, row.id, nxt)
            if due > horizon:
                return
            if step.now - due > LATE_GRACE:
                if late:
                    await self._catch_up(step)
                return
            row.handled_until = nxt
            await self._occur(step, nxt)

    async def _catch_up(self, step: Step) -> None:
        row = step.row
        decision = catch_up(row.spec, row.handled_until, step.now)
        row.handled_until = max(row.handled_until, step.now)
        skipped(step, decision.too_old, "too_old")
        skipped(step, decision.over_cap, "over_cap")
        if decision.coalesced:
            row.coalesced += decision.coalesced
            step.events.append(("coalesced", "", decision.coalesced, None))
        for nominal in decision.fire:
            await self._occur(step, nominal)

    async def _occur(self, step: Step, nominal: datetime) -> None:
        if step.row.skips:
            step.row.skips -= 1
            skipped(step, 1, "skip", nominal)
            return
        await self._start(step, nominal, "link")

    async def _start(self, step: Step, nominal: datetime, by: str) -> None:
        """Claim and fire one occurrence under the overlap policy (memory's ``_start``)."""
        row, store = step.row, self._store
        if nominal in await store.fired_among(step.conn, self._ns, row.id, [nominal]):
            return  # fired already (a backfill, then a catch-up): at most once
        policy = row.spec.overlap
        if policy is not Overlap.ALLOW_ALL and (running := await self._running(step)):
            if policy is Overlap.SKIP or (policy is Overlap.BUFFER_ONE and row.buffered is not None):
                skipped(step, 1, "overlap", nominal)
                return
            if policy is Overlap.BUFFER_ONE:
                row.buffered = nominal
                return
            # cancel_previous: the runs triggered (recorded by now, under the row locks);
            # one not triggered yet is cancelled by the chain once it is (``triggered``)
            step.cancel += await store.mark_ended(
                step.conn, self._ns, row.id, [n for n, _ in running], step.now
            )
            running.clear()
        if not await store.claim(step.conn, self._ns, row.id, nominal, by, step.now):
            return
        row.fired += 1
        step.events.append(("fired", "", 1, nominal))
        step.fires.append(fire_of(row, nominal))
        if step.running is not None:
            step.running.append((nominal, None))

    async def _running(self, step: Step) -> _Running:
        """This schedule's fired runs still going: those not reported ended, less
        those ``active`` says are final (marked ended). A run not triggered yet
        counts as going."""
        if step.running is None:
            rows = await self._store.unended(step.conn, self._ns, step.row.id)
            ids = [run_id for _, run_id in rows if run_id is not None]
            if ids and step.active is not None:
                alive = await step.active(ids)
                done = [n for n, run_id in rows if run_id is not None and run_id not in alive]
                await self._store.mark_ended(step.conn, self._ns, step.row.id, done, step.now)
                rows = [(n, run_id) for n, run_id in rows if run_id is None or run_id in alive]
            step.running = rows
        return step.running

    async def _release(self, step: Step) -> None:
        """The buffered occurrence fires now (or is skipped if paused meanwhile)."""
        row = step.row
        nominal, row.buffered = row.buffered, None
        assert nominal is not None
        if row.paused_at is not None:
            skipped(step, 1, "paused", nominal)
            return
        await self._start(step, nominal, "buffer")

    async def _finish(self, step: Step) -> None:
        row = step.row
        await self._store.save(step.conn, row, step.now)
        if step.fires and (row.fired - len(step.fires)) // _PRUNE_EVERY != row.fired // _PRUNE_EVERY:
            await self._store.prune(step.conn, self._ns, row.id, FIRED_MEMORY)

    def _arm(self, row: ScheduleRow) -> Link | None:
        """The link of the next occurrence after ``handled_until`` (None while
        paused or once the schedule has ended); sets ``next_fire_at``."""
        nxt = None if row.paused_at is not None else Walker(row.spec).next_after(row.handled_until)
        if nxt is None:
            row.next_fire_at = None
            return None
        row.next_fire_at = fire_time(row.spec, row.id, nxt)
        return Link(row.id, nxt, row.next_fire_at, row.gen)


def require_row(row: ScheduleRow | None, schedule_id: str) -> ScheduleRow:
    if row is None:
        raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")
    return row


def info_of(row: ScheduleRow) -> ScheduleInfo:
    nxt = None if row.paused_at is not None else Walker(row.spec).next_after(row.handled_until)
    return row.info(nxt)


def fire_of(row: ScheduleRow, nominal: datetime) -> Fire:
    return Fire(row.id, row.task_name, nominal, occurrence_id(row.id, nominal), row.payload)


def links_of(link: Link | None) -> tuple[Link, ...]:
    return () if link is None else (link,)


def skipped(step: Step, count: int, reason: str, nominal: datetime | None = None) -> None:
    if count > 0:
        step.row.skipped += count
        step.events.append(("skipped", reason, count, nominal))


def emit(step: Step) -> None:
    """Metrics and log lines of a committed decision (memory's)."""
    row = step.row
    for outcome, reason, count, nominal in step.events:
        record_occurrences(row.task_name, outcome, reason, count)
        if outcome == "skipped" and log.isEnabledFor(logging.INFO):
            what = occurrence_id(row.id, nominal) if nominal is not None else f"{count} of {row.id}"
            log.info(
                "schedule occurrence skipped occurrence=%s reason=%s",
                what,
                reason,
                extra={"event": "occurrence_skipped", "schedule_id": row.id, "reason": reason}
                | {"count": count},
            )
