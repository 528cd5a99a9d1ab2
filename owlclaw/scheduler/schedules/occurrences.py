"""Nominal times of a schedule: the cron read as wall time in its zone, with
the DST rules of docs/schedules.md, or ``every`` as elapsed time from start.

A schedule's occurrences are a fixed set of UTC instants (independent of where
one starts asking), built from the cron's wall-time matches:

- a wall time that exists once: its instant;
- a wall time in the spring gap: the transition instant (the first valid
  instant after it), once however many matches fall in the gap; for a cron
  whose hour field names every hour: nothing (that wall time never happens);
- a wall time that occurs twice (autumn): its first instant (fold=0); for a
  cron whose hour field names every hour: both instants.

UTC, and every zone's stretches between offset changes, use ``CronPlan``'s
field matcher directly (wall time labelled UTC, minus the offset).
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from owlclaw.scheduler.cron import CronPlan
from owlclaw.scheduler.errors import InvalidScheduleError
from owlclaw.scheduler.schedules.spec import ScheduleSpec

__all__ = ["TICK", "Walker", "next_occurrence", "occurrences", "utc"]

TICK = timedelta(microseconds=1)
_SAMPLE = timedelta(hours=6)  # offset changes closer than this are not told apart
_MIN_YEAR, _MAX_YEAR = 2, 9997  # room for the year either side of a window


def next_occurrence(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first nominal time strictly after ``after``, on or after ``spec.start``
    and before ``spec.end``, as an aware UTC datetime; None when there is none."""
    return Walker(spec).next_after(utc("after", after))


def occurrences(
    spec: ScheduleSpec, after: datetime, until: datetime, *, limit: int = 100_000
) -> Iterator[datetime]:
    """Nominal times in (``after``, ``until``], in order, at most ``limit`` of them
    (a bound: a per-second cron over a year is 31M instants)."""
    if limit < 0:
        raise InvalidScheduleError(f"limit={limit!r}: give 0 or more")
    walker = Walker(spec)
    t, hi = utc("after", after), utc("until", until)
    for _ in range(limit):
        nxt = walker.next_after(t)
        if nxt is None or nxt > hi:
            return
        yield nxt
        t = nxt


def utc(name: str, value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is refused."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # the common case, without a conversion
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidScheduleError(f"{name}={value!r}: give an aware datetime (tzinfo=UTC or a ZoneInfo)")
    return value.astimezone(UTC)


class Walker:
    """Steps through one spec's occurrences, keeping the current offset stretch."""

    __slots__ = ("_seg", "_utc", "spec")

    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec
        self._seg: _Segment | None = _LAST_SEGMENT.get(spec.zone)
        self._utc = spec.zone.key == "UTC"  # CronPlan's own fast path

    def next_after(self, after: datetime) -> datetime | None:
        spec = self.spec
        start, end = spec.start, spec.end
        if start is not None and after < start:
            after = start - TICK  # start is inclusive
        if spec.every is not None:
            assert start is not None  # ScheduleSpec requires it with every=
            nxt = start + ((after - start) // spec.every + 1) * spec.every
        else:
            assert spec.plan is not None
            if self._utc:
                nxt = spec.plan.next_after(after)
            else:
                nxt = self._zoned(spec.plan, spec.zone, spec.every_hour, after)
        if end is not None and nxt >= end:
            return None
        return nxt

    def _zoned(self, plan: CronPlan, zone: ZoneInfo, every_hour: bool, after: datetime) -> datetime:
        seg = self._seg
        if seg is None or not seg.start <= after < seg.end:
            seg = _segment(zone, after)
            _LAST_SEGMENT[zone] = seg
        wall_from = after + seg.off  # wall time labelled UTC, exclusive
        while True:
            if not every_hour and seg.prev_off > seg.off:
                # the first wall times of this stretch already happened before the
                # autumn change: they fired at their first instant, not again
                repeat_end = seg.start + seg.prev_off - TICK
                if wall_from < repeat_end:
                    wall_from = repeat_end
            wall = plan.next_after(wall_from)
            t = wall - seg.off
            if t < seg.end:
                self._seg = seg
                return t
            if not every_hour and seg.next_off > seg.off and wall < seg.end + seg.next_off:
                # a match inside the spring gap: it fires at the change itself
                self._seg = seg
                return seg.end
            crossed = seg.end
            seg = _segment(zone, crossed)  # may start earlier: a window's edge is no real change
            wall_from = crossed + seg.off - TICK  # the first wall time after the change, inclusive


class _Segment:
    """A stretch [start, end) of constant UTC offset, with its neighbours' offsets."""

    __slots__ = ("end", "next_off", "off", "prev_off", "start")

    def __init__(
        self, start: datetime, end: datetime, off: timedelta, prev_off: timedelta, next_off: timedelta
    ):
        self.start, self.end, self.off, self.prev_off, self.next_off = start, end, off, prev_off, next_off


# per zone, the stretch last looked up: a fresh Walker (one next_occurrence call)
# usually starts inside it (a plain dict: reads and writes are atomic)
_LAST_SEGMENT: dict[ZoneInfo, _Segment] = {}


def _segment(zone: ZoneInfo, t: datetime) -> _Segment:
    year = min(max(t.year, _MIN_YEAR), _MAX_YEAR)
    lo, hi, changes, offsets = _changes(zone, year)
    i = bisect_right(changes, t)
    off = offsets[i]
    start = changes[i - 1] if i else lo
    prev_off = offsets[i - 1] if i else off  # the window's edge is no real change
    end = changes[i] if i < len(changes) else hi
    next_off = offsets[i + 1] if i < len(changes) else off
    return _Segment(start, end, off, prev_off, next_off)


def _offset(zone: ZoneInfo, t: datetime) -> timedelta:
    off = t.astimezone(zone).utcoffset()
    assert off is not None
    return off


@functools.lru_cache(maxsize=512)
def _changes(
    zone: ZoneInfo, year: int
) -> tuple[datetime, datetime, tuple[datetime, ...], tuple[timedelta, ...]]:
    """The zone's offset changes in [Jan 1 of year-1, Jan 1 of year+2) UTC:
    (window start, window end, change instants, offsets) where ``offsets[i]``
    holds before ``changes[i]`` and ``offsets[i + 1]`` from it on.

    zoneinfo does not expose its transitions: sample every 6 hours, then bisect
    each change to the microsecond."""
    lo = datetime(year - 1, 1, 1, tzinfo=UTC)
    hi = datetime(year + 2, 1, 1, tzinfo=UTC)
    changes: list[datetime] = []
    offsets = [_offset(zone, lo)]
    t = lo
    while t < hi:
        nxt = min(t + _SAMPLE, hi)
        off = _offset(zone, nxt) if nxt < hi else offsets[-1]
        if off != offsets[-1]:
            a, b = t, nxt  # offset differs at b, not at a
            while b - a > TICK:
                mid = a + (b - a) // 2
                if _offset(zone, mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            changes.append(b)
            offsets.append(off)
        t = nxt
    return lo, hi, tuple(changes), tuple(offsets)
