"""The Hatchet backend's schedules, decided in PostgreSQL: the memory backend's
rules (``owlclaw/backends/memory/schedules.py``) on the rows of ``store.py``.

Every client call and every link is one transaction on the schedule's row,
locked ``FOR UPDATE``; "now" is the database's clock, so every process agrees.
The engine work a decision needs (trigger runs, arm or delete links, cancel
runs) is returned as ``Effects``, done by ``chain.py`` after the commit:

- a link that runs on time (within ``LATE_GRACE`` of its fire time) fires its
  occurrence, and any later one already due; a late one hands what was missed
  since the last occurrence handled to ``catch_up``;
- an occurrence fires at most once: its claim is the primary key
  ``(namespace, schedule_id, nominal)`` of ``owlclaw_occurrences``, and a
  backfill skips the claimed ones (the newest ``FIRED_MEMORY`` are kept);
- a link whose generation is not the row's (the schedule was edited, paused or
  resumed since), or whose nominal time is handled already, does nothing.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.hatchet.rows import Begin, ScheduleRow
from owlclaw.backends.hatchet.rules import (
    FIRED_MEMORY,
    LATE_GRACE,
    ActiveRuns,
    Effects,
    Fire,
    Link,
    Rules,
    Step,
    emit,
    fire_of,
    info_of,
    links_of,
    require_row,
    skipped,
)
from owlclaw.scheduler.models import ScheduleInfo
from owlclaw.scheduler.schedules import (
    DEFAULT_COUNT_LIMIT,
    ScheduleSpec,
    apply_pauses_and_skips,
    catch_up,
    fire_time,
    occurrences,
)
from owlclaw.scheduler.schedules.occurrences import TICK, utc

__all__ = ["FIRED_MEMORY", "LATE_GRACE", "ActiveRuns", "Effects", "Fire", "Link", "ScheduleBook"]


_SPEC_FIELDS = (
    "cron", "every", "timezone", "start", "end", "jitter", "overlap", "catchup_window", "coalesce"
)  # fmt: skip


class ScheduleBook(Rules):
    """The schedules of one namespace in a ``ScheduleStore`` (``clock_offset``: see ``Rules``)."""

    # client calls

    async def add(self, task_name: str, spec: ScheduleSpec, payload: dict[str, Any]) -> tuple[str, Effects]:
        """A schedule whose occurrences after now fire; its id and its first link."""
        sid = str(uuid.uuid4())
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            row = ScheduleRow(self._ns, sid, task_name, spec, payload, now)
            link = self._arm(row)
            await self._store.insert(conn, row, now)
        return sid, Effects(arm=links_of(link))

    async def convert(
        self,
        cron_id: str,
        task_name: str,
        spec: ScheduleSpec,
        payload: dict[str, Any],
        from_cron: dict[str, str],
    ) -> tuple[datetime | None, Effects]:
        """An engine cron made a schedule with its id, firing the occurrences after
        now (memory's ``Schedules.get``; ``convert.py``): its creation time and
        first link; (None, nothing) if that id exists (the primary key decides)."""
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            row = ScheduleRow(self._ns, cron_id, task_name, spec, payload, now, from_cron=from_cron)
            link = self._arm(row)
            if not await self._store.insert(conn, row, now, unless_exists=True):
                return None, Effects()
        return now, Effects(arm=links_of(link))

    async def converted(self, task_name: str, from_cron: dict[str, str]) -> datetime | None:
        """When the schedule made from this engine cron was made; None if none was."""
        async with self._store.transaction() as conn:
            return await self._store.converted_at(conn, self._ns, task_name, from_cron)

    async def get(self, schedule_id: str) -> ScheduleInfo:
        async with self._store.transaction() as conn:
            row = await self._store.fetch(conn, self._ns, schedule_id)
        return info_of(require_row(row, schedule_id))

    async def list(self, task_name: str | None) -> list[ScheduleInfo]:
        async with self._store.transaction() as conn:
            rows = await self._store.read(conn, self._ns, task_name)
        return [info_of(row) for row in rows]

    async def update(self, schedule_id: str, changes: dict[str, Any]) -> Effects:
        """Apply ``changes`` (``InvalidScheduleError``: nothing changed). Pause and
        pending skips stay; occurrences already handled never fire again."""
        async with self._store.transaction() as conn:
            row = require_row(await self._store.lock(conn, self._ns, schedule_id), schedule_id)
            rule = {f: getattr(row.spec, f) for f in _SPEC_FIELDS}
            if "cron" in changes:
                rule["every"] = None
            if "every" in changes:
                rule["cron"] = None
            rule.update((k, v) for k, v in changes.items() if k != "payload")
            spec = ScheduleSpec(**rule)
            row.payload = changes.get("payload", row.payload)
            effects = Effects()
            if spec != row.spec:
                row.spec, row.gen = spec, row.gen + 1
                effects = Effects(arm=links_of(self._arm(row)), disarm=(schedule_id,))
            await self._store.save(conn, row, await self._now(conn))
        return effects

    async def remove(self, schedule_id: str) -> tuple[bool, Effects]:
        async with self._store.transaction() as conn:
            found = await self._store.delete(conn, self._ns, schedule_id)
        return found, Effects(disarm=(schedule_id,)) if found else Effects()

    async def pause(self, schedule_id: str, note: str | None) -> Effects:
        """Pause; an occurrence due before now whose link has not run yet (links
        run ms to seconds after their time) fires, as memory fires it at its time."""
        async with self._store.transaction() as conn:
            row = require_row(await self._store.lock(conn, self._ns, schedule_id), schedule_id)
            now = await self._now(conn)
            row.note = note
            step = Step(conn, row, now, None)  # no look-ups: runs not reported ended count as going
            disarm: tuple[str, ...] = ()
            if row.paused_at is None:
                await self._advance(step, now, late=False)  # older ones (an outage): counted on resume
                row.paused_at, row.gen = now, row.gen + 1
                self._arm(row)  # clears next_fire_at
                disarm = (schedule_id,)
            await self._finish(step)
        emit(step)
        return Effects(fire=tuple(step.fires), cancel=tuple(step.cancel), disarm=disarm)

    async def resume(self, schedule_id: str) -> Effects:
        """What fell while paused is skipped, not caught up; an occurrence at now fires."""
        async with self._store.transaction() as conn:
            row = require_row(await self._store.lock(conn, self._ns, schedule_id), schedule_id)
            if row.paused_at is None:
                return Effects()
            now = await self._now(conn)
            step = Step(conn, row, now, None)
            # from the last handled: what fell before the pause unhandled (an outage) is counted too
            lo = row.handled_until
            missed = sum(1 for _ in occurrences(row.spec, lo, now - TICK, limit=DEFAULT_COUNT_LIMIT))
            skipped(step, missed, "paused")
            row.paused_at, row.note, row.gen = None, None, row.gen + 1
            row.handled_until = max(row.handled_until, now - TICK)
            link = self._arm(row)
            await self._store.save(conn, row, now)
        emit(step)
        return Effects(arm=links_of(link))

    async def skip(self, schedule_id: str, count: int) -> None:
        async with self._store.transaction() as conn:
            row = require_row(await self._store.lock(conn, self._ns, schedule_id), schedule_id)
            row.skips += count
            await self._store.save(conn, row, await self._now(conn))

    async def preview(
        self, schedule_id: str, start: datetime, end: datetime, limit: int
    ) -> builtins.list[datetime]:
        """What would fire in [start, end), the schedule as it is now: nothing
        while paused; a catch-up still to come (the armed link is overdue), then
        the occurrences after now, less the pending skips (memory's rules)."""
        async with self._store.transaction() as conn:
            s = require_row(await self._store.fetch(conn, self._ns, schedule_id), schedule_id)
            now = await self._now(conn)
        if s.paused_at is not None:
            return []
        overdue = s.next_fire_at is None or s.next_fire_at < now - LATE_GRACE
        behind = overdue and s.handled_until < now
        found: builtins.list[datetime] = [*catch_up(s.spec, s.handled_until, now).fire] if behind else []
        after = now if behind else s.handled_until
        skips = max(0, s.skips - len(found))  # pending skips take the catch-up first
        if start - TICK > after:  # those before the window take pending skips too
            skips -= sum(1 for _ in occurrences(s.spec, after, start - TICK, limit=skips))
            after = start - TICK
        found = [t for t in apply_pauses_and_skips(found, (), s.skips) if start <= t < end]
        found += occurrences(s.spec, after, end - TICK, limit=limit + skips)
        return apply_pauses_and_skips(found, (), skips)[:limit]

    async def backfill(self, schedule_id: str, start: datetime, end: datetime, active: ActiveRuns) -> Effects:
        """Fire the occurrences in [start, end) that never fired, under the overlap policy."""
        async with self._store.transaction() as conn:
            row = require_row(await self._store.lock(conn, self._ns, schedule_id), schedule_id)
            step = Step(conn, row, await self._now(conn), active)
            wanted = list(occurrences(row.spec, start - TICK, end - TICK, limit=DEFAULT_COUNT_LIMIT))
            fired = await self._store.fired_among(conn, self._ns, schedule_id, wanted)
            for nominal in wanted:
                if nominal not in fired:
                    await self._start(step, nominal, "backfill")
            await self._finish(step)
        emit(step)
        return Effects(fire=tuple(step.fires), cancel=tuple(step.cancel))

    # engine-driven

    async def link(self, schedule_id: str, nominal: datetime, gen: int, active: ActiveRuns) -> Effects:
        """A link ran: what fires now, and the next link (see the module docstring)."""
        nominal = utc("nominal", nominal)
        async with self._store.transaction() as conn:
            row = await self._store.lock(conn, self._ns, schedule_id)
            if row is None or row.gen != gen or row.paused_at is not None or nominal <= row.handled_until:
                return Effects()  # removed, edited, paused or resumed since; or handled already
            step = Step(conn, row, await self._now(conn), active)
            # the link vouches for its own nominal time, even if it ran a little early
            await self._advance(step, max(step.now, fire_time(row.spec, row.id, nominal)))
            link = self._arm(row)
            await self._finish(step)
        emit(step)
        return Effects(fire=tuple(step.fires), arm=links_of(link), cancel=tuple(step.cancel))

    async def sweep(self, slack: timedelta, active: ActiveRuns, limit: int = 100) -> Effects:
        """Schedules whose link is overdue by more than ``slack`` (lost): catch up
        and arm again; buffered occurrences whose runs all ended: fire them.
        Rows are taken ``FOR UPDATE SKIP LOCKED``: two sweepers never take one."""
        steps: list[Step] = []
        links: list[Link] = []
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            for row in await self._store.overdue(conn, self._ns, now - slack, limit):
                step = Step(conn, row, now, active)
                steps.append(step)
                if row.next_fire_at is not None and row.next_fire_at < now - slack:
                    await self._advance(step, now)
                    if (link := self._arm(row)) is not None:
                        links.append(link)
                if row.buffered is not None and not await self._running(step):
                    await self._release(step)
                await self._finish(step)
        for step in steps:
            emit(step)
        fires = tuple(f for s in steps for f in s.fires)
        return Effects(fire=fires, arm=tuple(links), cancel=tuple(c for s in steps for c in s.cancel))

    async def unstarted(self, older_than: timedelta) -> tuple[Fire, ...]:
        """Claimed occurrences with no run recorded for ``older_than`` (a crash
        between the commit and the trigger): each is returned once per period."""
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            found = await self._store.unstarted(conn, self._ns, now - older_than, now, 100)
            rows = await self._store.fetch_many(conn, self._ns, sorted({sid for sid, _ in found}))
            # claims of a schedule removed since: no run (as a removed schedule fires nothing)
            await self._store.forget(conn, self._ns, [(sid, t) for sid, t in found if sid not in rows])
        return tuple(fire_of(rows[sid], nominal) for sid, nominal in found if sid in rows)

    async def triggered(self, fire: Fire, run_id: str) -> bool:
        """The user run of ``fire`` was triggered: its owlclaw run id. True if
        the run is to be cancelled: a later occurrence superseded it (overlap
        ``cancel_previous``) before its trigger was recorded."""
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            return await self._store.triggered(conn, self._ns, fire.schedule_id, fire.nominal, run_id, now)

    async def begin(self, schedule_id: str, nominal: datetime, run_key: str) -> Begin:
        """RUN for the first engine run (``run_key``) of a fired occurrence, and
        its own retries; DUPLICATE for any other (a duplicate trigger), or if the
        occurrence was never claimed; SUPERSEDED (overlap ``cancel_previous``)
        if a later occurrence fired before any run of this one began: its cancel
        may have reached the engine before the run did."""
        nominal = utc("nominal", nominal)
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            return await self._store.begin(conn, self._ns, schedule_id, nominal, run_key, now)

    async def ended(self, schedule_id: str, nominal: datetime) -> Effects:
        """A fired run is final: with overlap ``buffer_one``, the buffered occurrence may fire."""
        nominal = utc("nominal", nominal)
        async with self._store.transaction() as conn:
            now = await self._now(conn)
            row = await self._store.lock(conn, self._ns, schedule_id)
            if row is None:  # removed: its run was the last use of the occurrence's row
                await self._store.forget(conn, self._ns, [(schedule_id, nominal)])
                return Effects()
            await self._store.mark_ended(conn, self._ns, schedule_id, [nominal], now)
            if row.buffered is None:
                return Effects()
            step = Step(conn, row, now, None)  # no look-ups: only the runs not reported ended
            if await self._running(step):
                return Effects()
            await self._release(step)
            await self._finish(step)
        emit(step)
        return Effects(fire=tuple(step.fires))

    async def now(self) -> datetime:
        """The database's clock (every process agrees on it)."""
        async with self._store.transaction() as conn:
            return await self._now(conn)
