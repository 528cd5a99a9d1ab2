"""``ScheduleSpec``: what a schedule fires on and its policies, validated once.

Every bad input raises ``InvalidScheduleError`` (or ``InvalidCronError`` for
the expression) at construction, with a message that says what to write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from owlclaw.scheduler.cron import CronPlan, cron_plan
from owlclaw.scheduler.errors import InvalidScheduleError

__all__ = [
    "DEFAULT_CATCHUP_WINDOW",
    "DEFAULT_COALESCE",
    "DEFAULT_OVERLAP",
    "MAX_JITTER_SECONDS",
    "Overlap",
    "ScheduleSpec",
    "check_zone",
]


class Overlap(StrEnum):
    """What to do when an occurrence is due while the previous run of the same
    schedule is still going."""

    SKIP = "skip"  # drop the new occurrence (recorded as skipped)
    BUFFER_ONE = "buffer_one"  # keep at most one waiting; it starts when the running one ends
    ALLOW_ALL = "allow_all"  # start it anyway, runs overlap
    CANCEL_PREVIOUS = "cancel_previous"  # cancel the running one, then start the new one


# SKIP: an agent run that is still going when the next is due is usually slow
# (a long LLM call); starting another doubles the bill and races on the same
# data. Skipped occurrences are counted, never silent. (Temporal's default too.)
DEFAULT_OVERLAP = Overlap.SKIP
# One day, coalesced: after an outage a schedule fires at most ONE catch-up run
# (the latest missed occurrence), so the bill is bounded whatever the cron; the
# day keeps a daily digest missed by a restart; anything older is recorded as
# skipped, with a count, not dropped silently.
DEFAULT_CATCHUP_WINDOW = timedelta(days=1)
DEFAULT_COALESCE = True
MAX_JITTER_SECONDS = 86_400.0  # a day: past that, jitter is a different schedule
_MIN_EVERY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule's rule: exactly one of ``cron`` or ``every``, and its policies.

    - ``cron``: 5 fields, or 6 with seconds FIRST, or an ``@daily``-style alias,
      read as wall time in ``timezone`` (the DST rules are in docs/schedules.md).
    - ``every``: a ``timedelta`` of at least 1 s, elapsed time from ``start``
      (required with ``every``), whatever the time zone and DST do.
    - ``timezone``: an IANA name (``"Europe/Paris"``); ``"UTC"`` by default.
    - ``start`` (inclusive) and ``end`` (exclusive): aware datetimes, kept in UTC.
    - ``jitter``: seconds in [0, 86400]; each occurrence fires at its nominal time
      plus a deterministic offset in [0, jitter) (``fire_time``). It may exceed the
      period; bounds and identity always use the nominal time.
    - ``overlap``, ``catchup_window`` (a ``timedelta``, or seconds), ``coalesce``:
      see ``Overlap`` and ``catch_up``.
    """

    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    jitter: float = 0.0
    overlap: Overlap = DEFAULT_OVERLAP
    catchup_window: timedelta = DEFAULT_CATCHUP_WINDOW
    coalesce: bool = DEFAULT_COALESCE
    # derived once, so the hot path does no look-ups
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    plan: CronPlan | None = field(init=False, repr=False, compare=False)
    every_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        if (self.cron is None) == (self.every is None):
            raise InvalidScheduleError(
                "give exactly one of cron='*/5 * * * *' or every=timedelta(minutes=5)"
                + (" (both were given)" if self.cron is not None else "")
            )
        plan = None
        if self.cron is not None:
            if not isinstance(self.cron, str):
                raise InvalidScheduleError(f"cron must be a string such as '0 9 * * *', not {self.cron!r}")
            plan = cron_plan(self.cron)  # InvalidCronError says what to fix
            put(self, "cron", " ".join(self.cron.split()))
        else:
            if not isinstance(self.every, timedelta):
                raise InvalidScheduleError(
                    f"every must be a datetime.timedelta such as timedelta(minutes=5), not {self.every!r}"
                )
            if self.every < _MIN_EVERY:
                raise InvalidScheduleError(
                    f"every={self.every!r} is under 1 second: give timedelta(seconds=1) or more"
                )
            if self.start is None:
                raise InvalidScheduleError(
                    "every= needs start= (an aware datetime): intervals are elapsed time counted from it"
                )
        put(self, "plan", plan)
        put(self, "every_hour", plan is not None and _names_every_hour(plan))
        put(self, "zone", _zone(self.timezone))
        put(self, "start", _aware("start", self.start))
        put(self, "end", _aware("end", self.end))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InvalidScheduleError(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}: "
                "give an end later than the start, or no end"
            )
        put(self, "jitter", _jitter(self.jitter))
        try:
            put(self, "overlap", Overlap(self.overlap))
        except ValueError:
            choices = ", ".join(repr(o.value) for o in Overlap)
            raise InvalidScheduleError(f"overlap={self.overlap!r}: give one of {choices}") from None
        put(self, "catchup_window", _window(self.catchup_window))
        if not isinstance(self.coalesce, bool):
            raise InvalidScheduleError(f"coalesce must be True or False, not {self.coalesce!r}")


def _names_every_hour(plan: CronPlan) -> bool:
    # the hour field allows all 24 hours ('*', '*/1', '0-23'): such a cron fires at
    # each real instant (both autumn folds; nothing inside the spring gap)
    hours = croniter(plan.croniter_form).expanded[1]
    return hours == ["*"] or {int(h) for h in hours} == set(range(24))


def check_zone(name: object) -> ZoneInfo:
    """The ``ZoneInfo`` of an IANA name; ``InvalidScheduleError`` says what to write."""
    return _zone(name)


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise InvalidScheduleError(f"timezone={name!r}: give an IANA name such as 'Europe/Paris' or 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"unknown timezone {name!r}: give an IANA name such as 'America/New_York' or 'UTC' "
            "(on a system without a time zone database, install the tzdata package)"
        ) from None


def _aware(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidScheduleError(f"{name} must be a datetime, not {value!r}")
    if value.utcoffset() is None:
        raise InvalidScheduleError(
            f"{name}={value.isoformat()} is naive: give an aware datetime, "
            f"e.g. {name}=datetime(..., tzinfo=ZoneInfo('Europe/Paris')) or tzinfo=UTC"
        )
    return value.astimezone(UTC)


def _jitter(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidScheduleError(f"jitter must be a number of seconds, not {value!r}")
    if not 0 <= value <= MAX_JITTER_SECONDS:
        raise InvalidScheduleError(f"jitter={value!r}: give seconds from 0 to {MAX_JITTER_SECONDS:g}")
    return float(value)


def _window(value: object) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidScheduleError(f"catchup_window={value!r}: give seconds >= 0 or a timedelta")
        try:
            value = timedelta(seconds=value)
        except OverflowError:
            raise InvalidScheduleError(
                f"catchup_window={value!r} is too large: give a few days at most"
            ) from None
    if not isinstance(value, timedelta):
        raise InvalidScheduleError(f"catchup_window must be a timedelta or seconds, not {value!r}")
    if value < timedelta(0):
        raise InvalidScheduleError(f"catchup_window={value!r} is negative: give 0 (no catch-up) or more")
    return value
