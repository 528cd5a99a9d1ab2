"""Cron expressions as the Hatchet engine reads them: UTC, 5 fields, or 6
with seconds first, or an ``@hourly``-style alias.

Each expression is parsed once (cached); its next fire time comes from
sorted field values, as croniter computes it, with croniter itself as the
fallback for what the matcher does not cover (``L``, ``W``, ``#``).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, croniter

from owlclaw.scheduler.errors import InvalidCronError

__all__ = ["next_fire_time", "normalize_cron"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_HELP = (
    "write 5 fields 'minute hour day-of-month month day-of-week' (e.g. '*/5 * * * *'), "
    "6 fields with seconds FIRST (e.g. '*/10 * * * * *'), or one of " + ", ".join(sorted(ALIASES))
)


def normalize_cron(expression: str) -> str:
    """Return the expression in 5- or 6-field form (aliases expanded).

    :raises InvalidCronError: the engine would reject it; the message says why.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCronError(f"cron expression {expression!r} is empty: {_HELP}")
    return _normalize(expression)


@functools.lru_cache(maxsize=1024)
def _normalize(expression: str) -> str:
    text = " ".join(expression.split())
    if text.startswith("@"):
        try:
            return ALIASES[text.lower()]
        except KeyError:
            raise InvalidCronError(f"unknown cron alias {text!r}: {_HELP}") from None
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise InvalidCronError(f"cron expression {expression!r} has {len(fields)} fields: {_HELP}")
    try:
        croniter(_croniter_form(fields))
    except (ValueError, KeyError) as exc:
        raise InvalidCronError(f"invalid cron expression {expression!r} ({exc}): {_HELP}") from exc
    if _has_day_seven(fields[-1]):
        raise InvalidCronError(
            f"cron expression {expression!r} uses day-of-week 7; write 0 for Sunday "
            f"(the engine reads days 0-6 and silently drops such a cron): {_HELP}"
        )
    try:
        croniter(_croniter_form(fields), datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidCronError(
            f"cron expression {expression!r} never fires (a day the month does not have?): {_HELP}"
        ) from None
    return text


def next_fire_time(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (UTC) at which the cron fires."""
    return cron_plan(expression).next_after(after.astimezone(UTC))


def cron_plan(expression: str) -> CronPlan:
    """The parsed expression, to ask for fire time after fire time.

    :raises InvalidCronError: as ``normalize_cron``.
    """
    return _plan(normalize_cron(expression))


@dataclass(frozen=True, slots=True)
class CronPlan:
    """A parsed cron expression (``cron_plan``)."""

    croniter_form: str
    fields: _Fields | None  # None: croniter computes every fire time

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``, a UTC datetime."""
        if self.fields is not None:
            nxt = self.fields.next_after(after)
            if nxt is not None:
                return nxt
        found: datetime = croniter(self.croniter_form, after).get_next(datetime)
        return found.astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def _plan(normalized: str) -> CronPlan:
    form = _croniter_form(normalized.split(" "))
    return CronPlan(form, _Fields.parse(form))


_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)
_YEARS_SEARCHED = 30  # past this, croniter decides (it raises for a cron that never fires)


@dataclass(frozen=True, slots=True)
class _Fields:
    """A cron's allowed values, sorted; ``None`` where any value matches."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 0 = Sunday
    whole_seconds: bool  # 6 fields: steps of one second, else of one minute
    every: bool = False  # every field is "*": each second (or minute) fires

    @staticmethod
    def parse(form: str) -> _Fields | None:
        parts = form.upper().split(" ")
        if any(c in parts[2] for c in "LW") or any(c in parts[4] for c in "L#"):
            return None  # last day, nearest weekday, nth weekday: croniter's
        it = croniter(form)
        if getattr(it, "nth_weekday_of_month", None):
            return None
        expanded: list[list[Any]] = it.expanded
        for values in expanded:
            if values != ["*"] and not all(type(v) is int for v in values):
                return None

        def allowed(values: list[Any], full: range) -> tuple[int, ...]:
            return tuple(full) if values == ["*"] else tuple(sorted({int(v) for v in values}))

        def some(values: list[Any], seven_is_zero: bool = False) -> frozenset[int] | None:
            if values == ["*"]:
                return None
            return frozenset(0 if seven_is_zero and v == 7 else int(v) for v in values)

        six = len(expanded) == 6
        return _Fields(
            every=all(values == ["*"] for values in expanded),
            seconds=allowed(expanded[5], range(60)) if six else (0,),
            minutes=allowed(expanded[0], range(60)),
            hours=allowed(expanded[1], range(24)),
            days=some(expanded[2]),
            months=some(expanded[3]),
            weekdays=some(expanded[4], seven_is_zero=True),
            whole_seconds=six,
        )

    def day_matches(self, t: datetime) -> bool:
        days, weekdays = self.days, self.weekdays
        if days is None and weekdays is None:
            return True
        # both given: either matches (croniter's day_or)
        in_days = days is not None and t.day in days
        return in_days or (weekdays is not None and (t.weekday() + 1) % 7 in weekdays)

    def next_after(self, after: datetime) -> datetime | None:
        """The first match strictly after ``after`` (UTC), None past the years searched."""
        if self.every and after.microsecond == 0 and (self.whole_seconds or after.second == 0):
            return after + (_SECOND if self.whole_seconds else _MINUTE)  # a tick's own time: no replace()
        if self.whole_seconds:
            t = after.replace(microsecond=0) + _SECOND
        else:
            t = after.replace(second=0, microsecond=0) + _MINUTE
        if self.every:
            return t
        last_year = t.year + _YEARS_SEARCHED
        months, hours, minutes, seconds = self.months, self.hours, self.minutes, self.seconds
        while t.year <= last_year:
            if months is not None and t.month not in months:
                year, month = (t.year, t.month + 1) if t.month < 12 else (t.year + 1, 1)
                t = datetime(year, month, 1, tzinfo=UTC)
                continue
            if not self.day_matches(t):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + _DAY
                continue
            i = bisect_left(hours, t.hour)
            if i == len(hours):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + _DAY
                continue
            if hours[i] != t.hour:
                t = t.replace(hour=hours[i], minute=0, second=0)
            i = bisect_left(minutes, t.minute)
            if i == len(minutes):
                t = t.replace(minute=0, second=0) + _HOUR
                continue
            if minutes[i] != t.minute:
                t = t.replace(minute=minutes[i], second=0)
            i = bisect_left(seconds, t.second)
            if i == len(seconds):
                t = t.replace(second=0) + _MINUTE
                continue
            return t.replace(second=seconds[i])
        return None


def _croniter_form(fields: list[str]) -> str:
    # croniter puts seconds last; the engine (and we) put them first.
    if len(fields) == 6:
        fields = fields[1:] + fields[:1]
    return " ".join(fields)


def _has_day_seven(day_of_week: str) -> bool:
    for part in day_of_week.split(","):
        base = part.split("/")[0]
        if "7" in base.split("-"):
            return True
    return False
