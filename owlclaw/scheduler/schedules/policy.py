"""What fires, given the occurrences: jitter, occurrence ids, catch-up after
downtime, and pauses and skips for a preview. Pure functions of their inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from owlclaw.scheduler.errors import InvalidScheduleError
from owlclaw.scheduler.schedules.occurrences import TICK, Walker, occurrences, utc
from owlclaw.scheduler.schedules.spec import ScheduleSpec

__all__ = [
    "DEFAULT_COUNT_LIMIT",
    "DEFAULT_MAX_CATCHUP_RUNS",
    "CatchUp",
    "apply_pauses_and_skips",
    "catch_up",
    "fire_time",
    "occurrence_id",
    "preview",
]

DEFAULT_MAX_CATCHUP_RUNS = 100  # with coalesce=False: catch-up runs fired at most, per outage
DEFAULT_COUNT_LIMIT = 10_000  # missed occurrences counted one by one, at most (a few ms)
_NO_END = datetime.max.replace(tzinfo=UTC)


def occurrence_id(schedule_id: str, nominal: datetime) -> str:
    """``"<schedule id>@<nominal UTC time, ISO 8601, Z>"``, e.g.
    ``"digest@2026-03-08T07:00:00Z"``: the same occurrence gets the same id in
    every process (microseconds appear only when the nominal time has them)."""
    return f"{schedule_id}@{_iso(utc('nominal', nominal))}"


def fire_time(spec: ScheduleSpec, schedule_id: str, nominal: datetime) -> datetime:
    """``nominal`` plus a deterministic offset in [0, ``spec.jitter``) seconds,
    whole microseconds, from a BLAKE2b hash of the occurrence id: every process
    computes the same instant, and occurrences spread evenly."""
    nominal = utc("nominal", nominal)
    span = int(spec.jitter * 1_000_000)
    if span <= 0:
        return nominal
    digest = hashlib.blake2b(occurrence_id(schedule_id, nominal).encode(), digest_size=8).digest()
    return nominal + timedelta(microseconds=int.from_bytes(digest, "big") % span)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The decision for occurrences missed in (``last``, ``now``] (``catch_up``).

    ``fire``: nominal times to fire now, oldest first. The others are recorded as
    skipped: ``too_old`` (before ``now - catchup_window``), ``coalesced`` (folded
    into the one fired), ``over_cap`` (past ``max_runs``). When ``exact`` is False a
    count stopped at ``count_limit`` and is a lower bound. Everything up to ``now``
    is handled afterwards: the next ``last`` is ``now``.
    """

    fire: tuple[datetime, ...]
    too_old: int
    coalesced: int
    over_cap: int
    exact: bool

    @property
    def skipped(self) -> int:
        """Missed occurrences that do not fire (record them as skipped)."""
        return self.too_old + self.coalesced + self.over_cap


def catch_up(
    spec: ScheduleSpec,
    last: datetime,
    now: datetime,
    *,
    max_runs: int = DEFAULT_MAX_CATCHUP_RUNS,
    count_limit: int = DEFAULT_COUNT_LIMIT,
) -> CatchUp:
    """Which occurrences in (``last``, ``now``] fire, given ``last``, the latest
    nominal time already handled (or the schedule's creation time).

    Occurrences older than ``now - spec.catchup_window`` are skipped (too old).
    Within the window: with ``coalesce`` the LATEST fires alone (the freshest
    data; the others are coalesced); without, each fires once, the oldest
    ``max_runs`` of them (the rest are over the cap). An occurrence at exactly
    ``now`` is due, not missed, and fires as any other in the window. Cost is
    bounded: at most ``count_limit`` occurrences are counted one by one.
    """
    last, now = utc("last", last), utc("now", now)
    if max_runs < 1 or count_limit < 1:
        raise InvalidScheduleError("max_runs and count_limit must be 1 or more")
    if now <= last:
        return CatchUp((), 0, 0, 0, True)
    walker = Walker(spec)
    edge = max(last, now - spec.catchup_window - TICK)  # window start, inclusive
    too_old, exact_old = _count(spec, walker, last, edge, count_limit)
    if spec.coalesce:
        latest = _latest(walker, edge, now)
        if latest is None:
            return CatchUp((), too_old, 0, 0, exact_old)
        others, exact = _count(spec, walker, edge, latest - TICK, count_limit)
        return CatchUp((latest,), too_old, others, 0, exact_old and exact)
    fire: list[datetime] = []
    t = edge
    while len(fire) < max_runs:
        nxt = walker.next_after(t)
        if nxt is None or nxt > now:
            return CatchUp(tuple(fire), too_old, 0, 0, exact_old)
        fire.append(nxt)
        t = nxt
    over, exact = _count(spec, walker, t, now, count_limit)
    return CatchUp(tuple(fire), too_old, 0, over, exact_old and exact)


def _count(spec: ScheduleSpec, walker: Walker, lo: datetime, hi: datetime, limit: int) -> tuple[int, bool]:
    """Occurrences in (lo, hi], exact for ``every`` (arithmetic), else counted up
    to ``limit`` (then ``(limit, False)``)."""
    if hi <= lo:
        return 0, True
    if spec.every is not None:
        first = walker.next_after(lo)
        if first is None or first > hi:
            return 0, True
        top = hi if spec.end is None else min(hi, spec.end - TICK)
        return (top - first) // spec.every + 1, True
    n, t = 0, lo
    while n < limit:
        nxt = walker.next_after(t)
        if nxt is None or nxt > hi:
            return n, True
        n, t = n + 1, nxt
    nxt = walker.next_after(t)
    return n, nxt is None or nxt > hi


def _latest(walker: Walker, lo: datetime, hi: datetime) -> datetime | None:
    """The last occurrence in (lo, hi], probing back from ``hi`` by doubling steps
    (a few calls, not a walk over the whole window)."""
    step = timedelta(seconds=1)
    while True:
        probe = max(lo, hi - step)
        first = walker.next_after(probe)
        if first is not None and first <= hi:
            break
        if probe == lo:
            return None
        step *= 2
    latest = first
    while (nxt := walker.next_after(latest)) is not None and nxt <= hi:
        latest = nxt
    return latest


def apply_pauses_and_skips(
    nominals: Iterable[datetime],
    pauses: Sequence[tuple[datetime, datetime | None]] = (),
    skip: int = 0,
) -> list[datetime]:
    """The nominal times that fire: those inside a pause [paused_at, resumed_at)
    are dropped (a pause skips, it does not catch up; ``None`` = still paused),
    then the first ``skip`` of the remaining ones are dropped (a skip counts
    occurrences that would have fired, not paused ones)."""
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise InvalidScheduleError(f"skip={skip!r}: give a count of 0 or more")
    spans = [(utc("paused_at", a), _NO_END if b is None else utc("resumed_at", b)) for a, b in pauses]
    for a, b in spans:
        if b < a:
            raise InvalidScheduleError(f"pause {_iso(a)} .. {_iso(b)} ends before it starts")
    fired: list[datetime] = []
    for nominal in nominals:
        if any(a <= nominal < b for a, b in spans):
            continue
        if skip:
            skip -= 1
            continue
        fired.append(nominal)
    return fired


def preview(
    spec: ScheduleSpec,
    start: datetime,
    end: datetime,
    *,
    pauses: Sequence[tuple[datetime, datetime | None]] = (),
    skip: int = 0,
    limit: int = 10_000,
) -> list[datetime]:
    """Nominal times that would fire in [``start``, ``end``) (aware UTC), after
    pauses and the ``skip`` count still pending from ``start`` on; at most
    ``limit`` of them (counted before pauses and skips drop any)."""
    start, end = utc("start", start), utc("end", end)
    if end <= start:
        raise InvalidScheduleError(f"preview end {_iso(end)} is not after start {_iso(start)}")
    found = occurrences(spec, start - TICK, end - TICK, limit=limit)
    return apply_pauses_and_skips(found, pauses, skip)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
