"""Cron expressions as the Hatchet engine reads them: UTC, 5 fields, or 6
with seconds first, or an ``@hourly``-style alias."""

from __future__ import annotations

from datetime import UTC, datetime

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
    fields = normalize_cron(expression).split(" ")
    it = croniter(_croniter_form(fields), after.astimezone(UTC))
    nxt: datetime = it.get_next(datetime)
    return nxt.astimezone(UTC)


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
