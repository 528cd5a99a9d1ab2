"""The memory backend's schedules: the rules of ``owlclaw.scheduler.schedules``
on the scheduler's heap (one ``SCHEDULE`` entry per schedule, at the fire time
of its next occurrence), with overlap, pause, skip, catch-up and backfill.

- An entry that fires on time fires its occurrence. One that fires late (an
  engine outage deferred it; the worker was stopped) hands what was missed
  since the last occurrence handled to ``catch_up``: what fires, what is
  coalesced, what is too old (counted as skipped).
- While no worker runs, nothing fires: the entry is dropped, and
  ``start_worker`` catches up (``Schedules.fleet_up``).
- Each occurrence fires at most once: the run of an occurrence is remembered
  by nominal time (the newest ``FIRED_MEMORY``), and a backfill skips those.
- Plain UTC crons (``add_cron``) stay ``Timetable`` crons, the fast path;
  pausing, skipping, previewing or backfilling one turns it into a schedule
  with the same id (overlap ``allow_all``, as crons fire).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from owlclaw.backends.memory.runs import SCHEDULE, Entry, Run, Timetable
from owlclaw.scheduler.errors import TaskNotFoundError
from owlclaw.scheduler.kit import copy_json
from owlclaw.scheduler.kit.schedule_calls import schedule_info
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability.metrics import record_occurrences
from owlclaw.scheduler.schedules import (
    DEFAULT_COUNT_LIMIT,
    Overlap,
    ScheduleSpec,
    apply_pauses_and_skips,
    catch_up,
    fire_time,
    occurrence_id,
    occurrences,
)
from owlclaw.scheduler.schedules.occurrences import TICK, Walker

__all__ = ["FIRED_MEMORY", "LATE_GRACE", "Occurrence", "ScheduleHooks", "Schedules"]

log = logging.getLogger("owlclaw.scheduler.schedules")

#: An entry that fires more than this after its fire time was missed (an
#: outage, a stopped worker): its occurrences go through ``catch_up``.
LATE_GRACE = timedelta(seconds=1)
#: Fired occurrences remembered per schedule (a backfill never fires them again).
FIRED_MEMORY = 10_000
_SPEC_FIELDS = (
    "cron", "every", "timezone", "start", "end", "jitter", "overlap", "catchup_window", "coalesce"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Occurrence:
    """What a schedule's run knows of the occurrence that fired it."""

    schedule_id: str
    nominal: datetime
    id: str


@dataclass(eq=False)
class Schedule:
    id: str
    task_name: str
    spec: ScheduleSpec
    payload: dict[str, Any]
    last: datetime  # occurrences up to this instant are handled (fired or skipped)
    walker: Walker
    entry: Entry | None = None
    paused_at: datetime | None = None
    note: str | None = None
    skips: int = 0
    active: list[Run] = field(default_factory=list)  # its runs not known final
    buffered: datetime | None = None  # overlap buffer_one: the occurrence waiting
    runs: dict[datetime, str] = field(default_factory=dict)  # nominal -> run id, newest last
    fired: int = 0
    skipped: int = 0
    coalesced: int = 0


class Host(Protocol):
    """What ``Schedules`` needs of the ``MemoryScheduler``."""

    _book: Timetable
    _accepting: bool

    @property
    def tasks(self) -> Mapping[str, TaskOptions]: ...

    def _now(self) -> datetime: ...

    def _queue(self, run: Run) -> None: ...

    def _start_ready(self) -> None: ...

    def _cancel_run(self, run: Run) -> bool: ...


class Schedules:
    """The schedules of one ``MemoryScheduler``, by id."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.by_id: dict[str, Schedule] = {}

    # changes

    def add(self, task_name: str, spec: ScheduleSpec, payload: dict[str, Any]) -> str:
        """A schedule whose occurrences after now fire; returns its id."""
        now = self._host._now()
        s = Schedule(self._host._book.new_id(), task_name, spec, payload, now, Walker(spec))
        self.by_id[s.id] = s
        self._arm(s)
        return s.id

    def declared(self, options: TaskOptions) -> str:
        """``@task(cron=..., timezone=...)`` in a zone other than UTC."""
        assert options.cron is not None
        spec = ScheduleSpec(cron=options.cron, timezone=options.timezone, overlap=Overlap.ALLOW_ALL)
        return self.add(options.name, spec, {})

    def get(self, schedule_id: str) -> Schedule:
        s = self.by_id.get(schedule_id) if isinstance(schedule_id, str) else None
        if s is not None:
            return s
        cron = self._host._book.crons.pop(schedule_id, None) if isinstance(schedule_id, str) else None
        if cron is None:
            raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")
        # a plain cron asked for more than its fast path does: a schedule from its pending tick on
        cron.entry.dead = True
        spec = ScheduleSpec(cron=cron.expression, overlap=Overlap.ALLOW_ALL)
        s = Schedule(cron.id, cron.task_name, spec, cron.payload, cron.entry.due - TICK, Walker(spec))
        self.by_id[s.id] = s
        self._arm(s)
        return s

    def update(self, schedule_id: str, changes: dict[str, Any]) -> None:
        s = self.get(schedule_id)
        rule = {f: getattr(s.spec, f) for f in _SPEC_FIELDS}
        if "cron" in changes:
            rule["every"] = None
        if "every" in changes:
            rule["cron"] = None
        rule.update((k, v) for k, v in changes.items() if k != "payload")
        spec = ScheduleSpec(**rule)  # InvalidScheduleError: nothing changed
        s.payload = changes.get("payload", s.payload)
        if spec != s.spec:
            s.spec, s.walker = spec, Walker(spec)
            self._arm(s)  # from the last occurrence handled; nothing fires twice

    def remove(self, schedule_id: str) -> bool:
        s = self.by_id.pop(schedule_id, None) if isinstance(schedule_id, str) else None
        if s is None:
            return False
        self._disarm(s)
        return True

    def pause(self, schedule_id: str, note: str | None) -> None:
        s = self.get(schedule_id)
        s.note = note
        if s.paused_at is None:
            s.paused_at = self._host._now()
            self._disarm(s)

    def resume(self, schedule_id: str) -> None:
        s = self.get(schedule_id)
        if s.paused_at is None:
            return
        now = self._host._now()
        # what fell while paused is skipped, not caught up; an occurrence at now fires.
        # From the last handled: what fell before the pause unhandled (no worker) is counted too.
        missed = sum(1 for _ in occurrences(s.spec, s.last, now - TICK, limit=DEFAULT_COUNT_LIMIT))
        self._skipped(s, missed, "paused")
        s.paused_at, s.note, s.last = None, None, max(s.last, now - TICK)
        self._arm(s)

    def skip(self, schedule_id: str, count: int) -> None:
        self.get(schedule_id).skips += count

    def fleet_up(self) -> None:
        """The worker started: schedules whose entry fired while it was down catch up."""
        for s in list(self.by_id.values()):
            if s.entry is None and s.paused_at is None:
                self._catch_up(s, self._host._now())
                self._arm(s)
        self._host._start_ready()

    # firing

    def fire(self, entry: Entry) -> None:
        """A ``SCHEDULE`` entry fell due (called by ``_fire_due``, which starts the runs)."""
        s, nominal = entry.ref
        if s.entry is not entry:
            return
        s.entry = None
        if not self._host._accepting:
            return  # no worker: nothing fires; start_worker catches up
        now = self._host._now()
        if now - entry.due <= LATE_GRACE:
            s.last = nominal
            self._occur(s, nominal)
        else:
            self._catch_up(s, now)
        self._arm(s)

    def backfill(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        s = self.get(schedule_id)
        ids = []
        for nominal in occurrences(s.spec, start - TICK, end - TICK, limit=DEFAULT_COUNT_LIMIT):
            if nominal not in s.runs and (run_id := self._start(s, nominal)) is not None:
                ids.append(run_id)
        self._host._start_ready()
        return ids

    def ended(self, run: Run) -> None:
        """A run a schedule fired is final: a buffered occurrence may start."""
        s = self.by_id.get(run.occurrence.schedule_id)
        if s is None or s.buffered is None:
            return
        s.active = [r for r in s.active if r is not run and not r.state.is_final]
        if not s.active:
            nominal, s.buffered = s.buffered, None
            if s.paused_at is not None:  # paused meanwhile: it does not fire
                self._skipped(s, 1, "paused", nominal)
                return
            self._start(s, nominal)
            self._host._start_ready()

    def _catch_up(self, s: Schedule, now: datetime) -> None:
        decision = catch_up(s.spec, s.last, now)
        s.last = now
        self._skipped(s, decision.too_old, "too_old")
        self._skipped(s, decision.over_cap, "over_cap")
        if decision.coalesced:
            s.coalesced += decision.coalesced
            record_occurrences(s.task_name, "coalesced", "", decision.coalesced)
        for nominal in decision.fire:
            self._occur(s, nominal)

    def _occur(self, s: Schedule, nominal: datetime) -> None:
        if s.skips:
            s.skips -= 1
            self._skipped(s, 1, "skip", nominal)
            return
        self._start(s, nominal)

    def _start(self, s: Schedule, nominal: datetime) -> str | None:
        """A run of this occurrence, queued under the overlap policy; its id, or None."""
        if nominal in s.runs:
            return None  # fired already (a backfill, then a catch-up): at most once
        if s.active:
            s.active = [r for r in s.active if not r.state.is_final]
        if s.active:
            policy = s.spec.overlap
            if policy is Overlap.SKIP or (policy is Overlap.BUFFER_ONE and s.buffered is not None):
                self._skipped(s, 1, "overlap", nominal)
                return None
            if policy is Overlap.BUFFER_ONE:
                s.buffered = nominal
                return None
            if policy is Overlap.CANCEL_PREVIOUS:
                for run in s.active:
                    self._host._cancel_run(run)
                s.active = []
        options = self._host.tasks.get(s.task_name)
        if options is None:
            self._skipped(s, 1, "task_not_registered", nominal)
            return None
        book = self._host._book
        run = book.new_run(options, copy_json(s.payload), nominal, TaskState.QUEUED)
        run.occurrence = Occurrence(s.id, nominal, occurrence_id(s.id, nominal))
        s.active.append(run)
        s.runs[nominal] = run.id
        if len(s.runs) > FIRED_MEMORY:
            del s.runs[next(iter(s.runs))]
        s.fired += 1
        record_occurrences(s.task_name, "fired", "", 1)
        self._host._queue(run)
        return run.id

    def _skipped(self, s: Schedule, count: int, reason: str, nominal: datetime | None = None) -> None:
        if count <= 0:
            return
        s.skipped += count
        record_occurrences(s.task_name, "skipped", reason, count)
        if log.isEnabledFor(logging.INFO):
            what = occurrence_id(s.id, nominal) if nominal is not None else f"{count} of {s.id}"
            log.info(
                "schedule occurrence skipped occurrence=%s reason=%s",
                what,
                reason,
                extra={"event": "occurrence_skipped", "schedule_id": s.id, "reason": reason, "count": count},
            )

    def _arm(self, s: Schedule) -> None:
        self._disarm(s)
        if s.paused_at is not None:
            return
        nxt = s.walker.next_after(s.last)
        if nxt is not None:
            due = fire_time(s.spec, s.id, nxt) if s.spec.jitter else nxt
            s.entry = self._host._book.push(due, SCHEDULE, (s, nxt))

    def _disarm(self, s: Schedule) -> None:
        if s.entry is not None:
            s.entry.dead = True
            s.entry = None

    # reading

    def info(self, s: Schedule) -> ScheduleInfo:
        nxt = None if s.paused_at is not None else s.walker.next_after(s.last)
        return schedule_info(
            s.spec,
            id=s.id,
            task_name=s.task_name,
            payload=copy_json(s.payload),
            next_run_at=nxt,
            paused=s.paused_at is not None,
            note=s.note,
            skips_pending=s.skips,
            fired=s.fired,
            skipped=s.skipped,
            coalesced=s.coalesced,
        )

    def preview(self, schedule_id: str, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """What would fire in [start, end), the schedule as it is now: nothing
        while paused; a catch-up still to come (the worker is down or the entry
        overdue), then the occurrences after now, less the pending skips."""
        s = self.get(schedule_id)
        if s.paused_at is not None:
            return []
        now = self._host._now()
        behind = (s.entry is None or s.entry.due < now - LATE_GRACE) and s.last < now
        found: list[datetime] = list(catch_up(s.spec, s.last, now).fire) if behind else []
        after = now if behind else s.last
        skips = max(0, s.skips - len(found))  # pending skips take the catch-up first
        if start - TICK > after:  # those before the window take pending skips too
            skips -= sum(1 for _ in occurrences(s.spec, after, start - TICK, limit=skips))
            after = start - TICK
        found = [t for t in apply_pauses_and_skips(found, (), s.skips) if start <= t < end]
        found += occurrences(s.spec, after, end - TICK, limit=limit + skips)
        return apply_pauses_and_skips(found, (), skips)[:limit]


class ScheduleHooks:
    """``BaseScheduler``'s schedule hooks for ``MemoryScheduler`` (a part of it)."""

    _schedules: Schedules
    _book: Timetable

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        raise NotImplementedError

    async def _remove_cron(self, cron_id: str) -> None:
        raise NotImplementedError

    async def _add_schedule(self, options: TaskOptions, spec: ScheduleSpec, payload: dict[str, Any]) -> str:
        return self._schedules.add(options.name, spec, payload)

    async def _list_schedules(self, task_name: str | None) -> list[ScheduleInfo]:
        found = await self._list_crons(task_name)
        schedules = self._schedules
        found += [schedules.info(s) for s in schedules.by_id.values() if task_name in (None, s.task_name)]
        return found

    async def _get_schedule(self, schedule_id: str) -> ScheduleInfo:
        if isinstance(schedule_id, str) and schedule_id in self._book.crons:
            return next(c for c in await self._list_crons(None) if c.id == schedule_id)
        return self._schedules.info(self._schedules.get(schedule_id))

    async def _remove_schedule(self, schedule_id: str) -> None:
        if not self._schedules.remove(schedule_id):
            await self._remove_cron(schedule_id)

    async def _update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> None:
        self._schedules.update(schedule_id, changes)

    async def _pause_schedule(self, schedule_id: str, note: str | None) -> None:
        self._schedules.pause(schedule_id, note)

    async def _resume_schedule(self, schedule_id: str) -> None:
        self._schedules.resume(schedule_id)

    async def _skip_schedule(self, schedule_id: str, count: int) -> None:
        self._schedules.skip(schedule_id, count)

    async def _preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, limit: int
    ) -> list[datetime]:
        return self._schedules.preview(schedule_id, start, end, limit)

    async def _backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        return self._schedules.backfill(schedule_id, start, end)
