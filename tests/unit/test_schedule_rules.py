"""Schedule rules: ScheduleSpec validation and nominal times across time zones
and DST (owlclaw.scheduler.schedules). Expected instants are written out in UTC,
worked out by hand from each zone's 2026 offset changes:

- America/New_York: 2026-03-08 07:00Z (02:00 EST -> 03:00 EDT), 2026-11-01 06:00Z (02:00 EDT -> 01:00 EST)
- Europe/Paris: 2026-03-29 01:00Z (02:00 -> 03:00), 2026-10-25 01:00Z (03:00 -> 02:00)
- Australia/Lord_Howe (30 min): 2026-04-04 15:00Z (02:00 +11 -> 01:30 +10:30),
  2026-10-03 15:30Z (02:00 +10:30 -> 02:30 +11)
- Asia/Tokyo: +09:00 all year; UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from owlclaw.scheduler.errors import InvalidCronError, InvalidScheduleError
from owlclaw.scheduler.schedules import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_COALESCE,
    DEFAULT_OVERLAP,
    Overlap,
    ScheduleSpec,
    next_occurrence,
    occurrences,
)


def z(text: str) -> datetime:
    """'2026-03-08 07:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def upcoming(spec: ScheduleSpec, after: str, n: int) -> list[str]:
    found = list(occurrences(spec, z(after), z(after) + timedelta(days=3000), limit=n))
    return [t.strftime("%Y-%m-%d %H:%M:%S") for t in found]


# (zone, cron, after (UTC), expected next UTC instants)
DST_CASES = [
    # New York, spring: 02:30 does not exist on 03-08 -> the change itself, 03:00 EDT = 07:00Z
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07 05:00",
        ["2026-03-07 07:30:00", "2026-03-08 07:00:00", "2026-03-09 06:30:00"],
    ),
    # several wall times in the gap fire once in all, at the change
    (
        "America/New_York",
        "*/15 2 * * *",
        "2026-03-07 07:40",
        ["2026-03-07 07:45:00", "2026-03-08 07:00:00", "2026-03-09 06:00:00"],
    ),
    # gap matches and a real 03:00 match land on one instant: once
    (
        "America/New_York",
        "0,30 2,3 * * *",
        "2026-03-08 06:00",
        ["2026-03-08 07:00:00", "2026-03-08 07:30:00", "2026-03-09 06:00:00"],
    ),
    # every hour named: 02:xx does not exist, nothing fires for it
    (
        "America/New_York",
        "*/30 * * * *",
        "2026-03-08 06:00",
        ["2026-03-08 06:30:00", "2026-03-08 07:00:00", "2026-03-08 07:30:00"],
    ),
    # New York, autumn: 01:30 happens twice on 11-01 -> first (EDT) only
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31 04:00",
        ["2026-10-31 05:30:00", "2026-11-01 05:30:00", "2026-11-02 06:30:00"],
    ),
    (
        "America/New_York",
        "0,30 1 * * *",
        "2026-11-01 04:59",
        ["2026-11-01 05:00:00", "2026-11-01 05:30:00", "2026-11-02 06:00:00"],
    ),
    # every hour named: both 01:00 and both 01:30 fire
    (
        "America/New_York",
        "*/30 * * * *",
        "2026-11-01 04:00",
        [
            "2026-11-01 04:30:00",
            "2026-11-01 05:00:00",
            "2026-11-01 05:30:00",
            "2026-11-01 06:00:00",
            "2026-11-01 06:30:00",
            "2026-11-01 07:00:00",
        ],
    ),
    # asked from inside the second 01:xx: the wall time already fired, wait for the next day
    ("America/New_York", "45 1 * * *", "2026-11-01 06:10", ["2026-11-02 06:45:00"]),
    # Paris, spring: 02:30 -> 03:00 CEST = 01:00Z
    (
        "Europe/Paris",
        "30 2 * * *",
        "2026-03-28 00:00",
        ["2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00"],
    ),
    ("Europe/Paris", "0 * * * *", "2026-03-29 00:00", ["2026-03-29 01:00:00", "2026-03-29 02:00:00"]),
    # Paris, autumn: 02:30 twice -> CEST one (00:30Z)
    ("Europe/Paris", "30 2 * * *", "2026-10-24 01:00", ["2026-10-25 00:30:00", "2026-10-26 01:30:00"]),
    (
        "Europe/Paris",
        "0 * * * *",
        "2026-10-24 23:30",
        ["2026-10-25 00:00:00", "2026-10-25 01:00:00", "2026-10-25 02:00:00"],
    ),
    # 6-field seconds cron in the gap: fires once at the change
    (
        "Europe/Paris",
        "*/20 30 2 * * *",
        "2026-03-28 01:30:30",
        ["2026-03-28 01:30:40", "2026-03-29 01:00:00", "2026-03-30 00:30:00"],
    ),
    # Lord Howe, spring: 02:00-02:30 missing; 02:15 -> 02:30 +11 = 15:30Z
    (
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2026-10-02 12:00",
        ["2026-10-02 15:45:00", "2026-10-03 15:30:00", "2026-10-04 15:15:00"],
    ),
    (
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2026-10-03 15:00",
        ["2026-10-03 15:15:00", "2026-10-03 15:30:00", "2026-10-03 15:45:00"],
    ),
    # Lord Howe, autumn: 01:30-02:00 twice
    (
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2026-04-03 12:00",
        ["2026-04-03 14:45:00", "2026-04-04 14:45:00", "2026-04-05 15:15:00"],
    ),
    (
        "Australia/Lord_Howe",
        "*/15 * * * *",
        "2026-04-04 14:20",
        [
            "2026-04-04 14:30:00",
            "2026-04-04 14:45:00",
            "2026-04-04 15:00:00",
            "2026-04-04 15:15:00",
            "2026-04-04 15:30:00",
        ],
    ),
    # no DST: a fixed +09:00 on the days other zones change
    (
        "Asia/Tokyo",
        "30 2 * * *",
        "2026-03-07 00:00",
        ["2026-03-07 17:30:00", "2026-03-08 17:30:00", "2026-03-09 17:30:00"],
    ),
    ("Asia/Tokyo", "0 9 * * *", "2026-10-31 12:00", ["2026-11-01 00:00:00", "2026-11-02 00:00:00"]),
    ("UTC", "30 2 * * *", "2026-03-07 00:00", ["2026-03-07 02:30:00", "2026-03-08 02:30:00"]),
]


@pytest.mark.parametrize(("zone", "cron", "after", "expected"), DST_CASES)
def test_dst_rules(zone: str, cron: str, after: str, expected: list[str]) -> None:
    spec = ScheduleSpec(cron=cron, timezone=zone)
    assert upcoming(spec, after, len(expected)) == expected
    # next_occurrence agrees, one call at a time
    t = z(after)
    for want in expected:
        got = next_occurrence(spec, t)
        assert got is not None and got.tzinfo is UTC
        assert got == z(want)
        t = got


CALENDAR_CASES = [
    # leap day: only 2028 has one
    ("UTC", "0 0 29 2 *", "2026-01-01 00:00", ["2028-02-29 00:00:00", "2032-02-29 00:00:00"]),
    ("America/New_York", "0 0 29 2 *", "2026-01-01 00:00", ["2028-02-29 05:00:00"]),
    # the 31st skips the short months
    ("UTC", "0 12 31 * *", "2026-01-31 13:00", ["2026-03-31 12:00:00", "2026-05-31 12:00:00"]),
    ("Europe/Paris", "0 12 31 * *", "2026-03-01 00:00", ["2026-03-31 10:00:00", "2026-05-31 10:00:00"]),
    # day-of-month OR day-of-week (as croniter): the 1st or a Monday; 2026-03-01 is a Sunday
    (
        "UTC",
        "0 0 1 * 1",
        "2026-02-27 00:00",
        ["2026-03-01 00:00:00", "2026-03-02 00:00:00", "2026-03-09 00:00:00"],
    ),
    # 6 fields, seconds first
    (
        "UTC",
        "*/20 * * * * *",
        "2026-01-01 00:00:05",
        ["2026-01-01 00:00:20", "2026-01-01 00:00:40", "2026-01-01 00:01:00"],
    ),
    ("Asia/Tokyo", "10 0 9 * * *", "2026-01-01 00:00", ["2026-01-01 00:00:10", "2026-01-02 00:00:10"]),
    # a zone with no offset change, across the edges of the spans of changes looked up (a regression:
    # the stretch after an edge resumed at the new span's start, so 2027-01-01 came back)
    (
        "Asia/Tokyo",
        "0 9 1 1 *",
        "2026-06-01 00:00",
        ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00", "2030-01-01 00:00:00"],
    ),
    # an alias, and croniter's own syntax (L: last day) in a zone
    ("America/New_York", "@daily", "2026-03-07 06:00", ["2026-03-08 05:00:00", "2026-03-09 04:00:00"]),
    ("Europe/Paris", "0 8 L * *", "2026-03-01 00:00", ["2026-03-31 06:00:00", "2026-04-30 06:00:00"]),
]


@pytest.mark.parametrize(("zone", "cron", "after", "expected"), CALENDAR_CASES)
def test_calendar_edges(zone: str, cron: str, after: str, expected: list[str]) -> None:
    assert upcoming(ScheduleSpec(cron=cron, timezone=zone), after, len(expected)) == expected


def test_start_inclusive_end_exclusive() -> None:
    spec = ScheduleSpec(cron="0 * * * *", start=z("2026-05-01 10:00"), end=z("2026-05-01 13:00"))
    assert upcoming(spec, "2026-01-01 00:00", 10) == [
        "2026-05-01 10:00:00",
        "2026-05-01 11:00:00",
        "2026-05-01 12:00:00",
    ]
    assert next_occurrence(spec, z("2026-05-01 12:00")) is None


def test_every_is_elapsed_time_from_start_across_dst() -> None:
    # 09:00 Paris in winter = 08:00Z; a day later is always 24 h later, so 10:00 CEST after the change
    start = datetime(2026, 3, 27, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    spec = ScheduleSpec(every=timedelta(days=1), start=start, timezone="Europe/Paris")
    assert upcoming(spec, "2026-01-01 00:00", 4) == [
        "2026-03-27 08:00:00",
        "2026-03-28 08:00:00",
        "2026-03-29 08:00:00",
        "2026-03-30 08:00:00",
    ]
    every90 = ScheduleSpec(
        every=timedelta(seconds=90), start=z("2026-03-08 06:59"), end=z("2026-03-08 07:05")
    )
    assert upcoming(every90, "2026-03-08 07:00", 10) == [
        "2026-03-08 07:00:30",
        "2026-03-08 07:02:00",
        "2026-03-08 07:03:30",
    ]
    # exactly on an occurrence: strictly after
    assert next_occurrence(every90, z("2026-03-08 07:02")) == datetime(2026, 3, 8, 7, 3, 30, tzinfo=UTC)


def test_after_in_another_zone_and_limit() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", timezone="Europe/Paris")
    after = datetime(2026, 6, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert next_occurrence(spec, after) == z("2026-06-02 07:00")
    assert (
        len(
            list(
                occurrences(
                    ScheduleSpec(cron="* * * * * *"), z("2026-01-01 00:00"), z("2027-01-01 00:00"), limit=5
                )
            )
        )
        == 5
    )
    with pytest.raises(InvalidScheduleError, match="aware"):
        next_occurrence(spec, datetime(2026, 1, 1))


def test_defaults() -> None:
    spec = ScheduleSpec(cron="0 9 * * *")
    assert spec.timezone == "UTC" and spec.jitter == 0.0
    assert spec.overlap is DEFAULT_OVERLAP is Overlap.SKIP
    assert spec.catchup_window == DEFAULT_CATCHUP_WINDOW == timedelta(days=1)
    assert spec.coalesce is DEFAULT_COALESCE is True
    assert ScheduleSpec(cron="0 9 * * *", overlap="buffer_one").overlap is Overlap.BUFFER_ONE  # type: ignore[arg-type]
    assert ScheduleSpec(cron="0 9 * * *", catchup_window=90).catchup_window == timedelta(seconds=90)  # type: ignore[arg-type]
    # start/end kept in UTC, whatever zone they were given in
    start = datetime(2026, 1, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert ScheduleSpec(cron="0 9 * * *", start=start).start == z("2026-01-01 00:00")


BAD_SPECS: list[tuple[dict[str, object], type[Exception], str]] = [
    ({}, InvalidScheduleError, "exactly one of cron"),
    ({"cron": "* * * * *", "every": timedelta(minutes=1)}, InvalidScheduleError, "both"),
    ({"cron": "61 * * * *"}, InvalidCronError, "invalid cron"),
    ({"cron": "0 0 31 2 *"}, InvalidCronError, "never fires"),
    ({"cron": 5}, InvalidScheduleError, "string"),
    ({"every": 60, "start": z("2026-01-01 00:00")}, InvalidScheduleError, "timedelta"),
    (
        {"every": timedelta(milliseconds=500), "start": z("2026-01-01 00:00")},
        InvalidScheduleError,
        "1 second",
    ),
    ({"every": timedelta(0), "start": z("2026-01-01 00:00")}, InvalidScheduleError, "1 second"),
    ({"every": timedelta(minutes=1)}, InvalidScheduleError, "needs start="),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, InvalidScheduleError, "unknown timezone"),
    ({"cron": "* * * * *", "timezone": "../../etc/passwd"}, InvalidScheduleError, "unknown timezone"),
    ({"cron": "* * * * *", "timezone": ""}, InvalidScheduleError, "IANA"),
    ({"cron": "* * * * *", "start": datetime(2026, 1, 1)}, InvalidScheduleError, "naive"),
    ({"cron": "* * * * *", "end": datetime(2026, 1, 1)}, InvalidScheduleError, "naive"),
    ({"cron": "* * * * *", "start": "2026-01-01"}, InvalidScheduleError, "must be a datetime"),
    (
        {"cron": "* * * * *", "start": z("2026-02-01 00:00"), "end": z("2026-01-01 00:00")},
        InvalidScheduleError,
        "not after start",
    ),
    (
        {"cron": "* * * * *", "start": z("2026-02-01 00:00"), "end": z("2026-02-01 00:00")},
        InvalidScheduleError,
        "not after start",
    ),
    # the same instant written in two zones is still end == start
    (
        {
            "cron": "* * * * *",
            "start": z("2026-02-01 00:00"),
            "end": datetime(2026, 2, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        },
        InvalidScheduleError,
        "not after",
    ),
    ({"cron": "* * * * *", "jitter": -1}, InvalidScheduleError, "jitter"),
    ({"cron": "* * * * *", "jitter": 86_401}, InvalidScheduleError, "jitter"),
    ({"cron": "* * * * *", "jitter": float("nan")}, InvalidScheduleError, "jitter"),
    ({"cron": "* * * * *", "jitter": True}, InvalidScheduleError, "jitter"),
    ({"cron": "* * * * *", "overlap": "queue"}, InvalidScheduleError, "buffer_one"),
    ({"cron": "* * * * *", "catchup_window": -5}, InvalidScheduleError, "negative"),
    ({"cron": "* * * * *", "catchup_window": timedelta(seconds=-1)}, InvalidScheduleError, "negative"),
    ({"cron": "* * * * *", "catchup_window": "1h"}, InvalidScheduleError, "timedelta"),
    ({"cron": "* * * * *", "catchup_window": 1e300}, InvalidScheduleError, "too large"),
    ({"cron": "* * * * *", "coalesce": "yes"}, InvalidScheduleError, "True or False"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_SPECS)
def test_bad_specs_say_what_to_fix(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ScheduleSpec(**kwargs)  # type: ignore[arg-type]


def test_spec_is_frozen_and_comparable() -> None:
    a = ScheduleSpec(cron="0  9 * * *", timezone="Europe/Paris")
    assert a == ScheduleSpec(cron="0 9 * * *", timezone="Europe/Paris")
    assert a.cron == "0 9 * * *"
    with pytest.raises(AttributeError):
        a.timezone = "UTC"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cron", "every_hour"),
    [
        ("*/15 * * * *", True),
        ("0 0-23 * * *", True),
        ("0 */1 * * *", True),
        ("0 9 * * *", False),
        ("*/15 2 * * *", False),
        ("0 0-22 * * *", False),
        ("0 * * * * *", True),
    ],
)
def test_which_crons_name_every_hour(cron: str, every_hour: bool) -> None:
    assert ScheduleSpec(cron=cron).every_hour is every_hour
