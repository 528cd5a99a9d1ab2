"""Schedule rules: jitter, occurrence ids, catch-up after downtime, pauses and
skips, and property tests (UTC agrees with croniter; in any zone occurrences
strictly increase) for owlclaw.scheduler.schedules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from owlclaw.scheduler.errors import InvalidScheduleError
from owlclaw.scheduler.schedules import (
    CatchUp,
    ScheduleSpec,
    apply_pauses_and_skips,
    catch_up,
    fire_time,
    next_occurrence,
    occurrence_id,
    occurrences,
    preview,
)


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- occurrence ids and jitter ---


def test_occurrence_id_is_readable_and_zone_independent() -> None:
    assert occurrence_id("digest", z("2026-03-08 07:00")) == "digest@2026-03-08T07:00:00Z"
    paris = datetime(2026, 3, 8, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert occurrence_id("digest", paris) == "digest@2026-03-08T07:00:00Z"
    assert occurrence_id("d", z("2026-03-08 07:00:00.250000")) == "d@2026-03-08T07:00:00.250000Z"
    with pytest.raises(InvalidScheduleError, match="aware"):
        occurrence_id("d", datetime(2026, 1, 1))


def test_jitter_is_deterministic_and_in_range() -> None:
    spec = ScheduleSpec(cron="* * * * *", jitter=30)
    nominals = list(occurrences(spec, z("2026-01-01 00:00"), z("2026-01-02 00:00")))
    offsets = [(fire_time(spec, "s1", n) - n).total_seconds() for n in nominals]
    assert len(offsets) == 1440
    assert all(0 <= o < 30 for o in offsets)
    # the same inputs give the same instant; another schedule id gives other instants
    assert offsets == [(fire_time(spec, "s1", n) - n).total_seconds() for n in nominals]
    assert offsets != [(fire_time(spec, "s2", n) - n).total_seconds() for n in nominals]
    # spread: both halves of the range are used, and offsets are not all equal
    assert min(offsets) < 10 and max(offsets) > 20 and len(set(offsets)) > 1000
    assert fire_time(ScheduleSpec(cron="* * * * *"), "s1", z("2026-01-01 00:00")) == z("2026-01-01 00:00")


def test_jitter_pinned_value() -> None:
    # the formula is part of the contract: processes (and releases) must agree on the instant
    import hashlib

    digest = hashlib.blake2b(b"s1@2026-01-01T00:00:00Z", digest_size=8).digest()
    want = int.from_bytes(digest, "big") % 30_000_000
    spec = ScheduleSpec(cron="* * * * *", jitter=30)
    assert fire_time(spec, "s1", z("2026-01-01 00:00")) == z("2026-01-01 00:00") + timedelta(
        microseconds=want
    )


# --- catch-up ---

HOURLY = "0 * * * *"


def test_catch_up_nothing_missed() -> None:
    spec = ScheduleSpec(cron=HOURLY)
    assert catch_up(spec, z("2026-05-01 10:00"), z("2026-05-01 10:59")) == CatchUp((), 0, 0, 0, True)
    assert catch_up(spec, z("2026-05-01 10:00"), z("2026-05-01 09:00")).fire == ()


def test_catch_up_coalesce_fires_the_latest_once() -> None:
    spec = ScheduleSpec(cron=HOURLY, catchup_window=timedelta(hours=3), coalesce=True)
    # down from 00:30 to 10:30: 01:00..10:00 missed; 08:00..10:00 within 3 h
    got = catch_up(spec, z("2026-05-01 00:30"), z("2026-05-01 10:30"))
    assert got.fire == (z("2026-05-01 10:00"),)
    assert (got.too_old, got.coalesced, got.over_cap, got.exact) == (7, 2, 0, True)
    assert got.skipped == 9


def test_catch_up_each_once_without_coalesce() -> None:
    spec = ScheduleSpec(cron=HOURLY, catchup_window=timedelta(hours=3), coalesce=False)
    got = catch_up(spec, z("2026-05-01 00:30"), z("2026-05-01 10:30"))
    assert got.fire == (z("2026-05-01 08:00"), z("2026-05-01 09:00"), z("2026-05-01 10:00"))
    assert (got.too_old, got.coalesced, got.over_cap) == (7, 0, 0)


def test_catch_up_window_edge_and_due_now() -> None:
    spec = ScheduleSpec(cron=HOURLY, catchup_window=timedelta(hours=2), coalesce=False)
    # 08:00 is exactly now - window: inside; 10:00 is exactly now: due, fires
    got = catch_up(spec, z("2026-05-01 06:30"), z("2026-05-01 10:00"))
    assert got.fire == (z("2026-05-01 08:00"), z("2026-05-01 09:00"), z("2026-05-01 10:00"))
    assert got.too_old == 1  # 07:00
    # window 0: only an occurrence at exactly now fires
    zero = ScheduleSpec(cron=HOURLY, catchup_window=0, coalesce=False)  # type: ignore[arg-type]
    assert catch_up(zero, z("2026-05-01 06:30"), z("2026-05-01 10:00")).fire == (z("2026-05-01 10:00"),)
    assert catch_up(zero, z("2026-05-01 06:30"), z("2026-05-01 10:01")).fire == ()
    # last is exclusive: the occurrence already handled does not fire again
    assert catch_up(spec, z("2026-05-01 10:00"), z("2026-05-01 10:30")).fire == ()


def test_catch_up_respects_end_and_start() -> None:
    spec = ScheduleSpec(cron=HOURLY, end=z("2026-05-01 09:30"), coalesce=True)
    assert catch_up(spec, z("2026-05-01 06:30"), z("2026-05-01 12:00")).fire == (z("2026-05-01 09:00"),)
    later = ScheduleSpec(cron=HOURLY, start=z("2026-05-02 00:00"))
    assert catch_up(later, z("2026-05-01 06:30"), z("2026-05-01 12:00")) == CatchUp((), 0, 0, 0, True)


def test_catch_up_across_dst_gap() -> None:
    # New York, 02:30 daily; down over the spring change: it fires at the change (07:00Z)
    spec = ScheduleSpec(cron="30 2 * * *", timezone="America/New_York", coalesce=False)
    got = catch_up(spec, z("2026-03-07 12:00"), z("2026-03-08 12:00"))
    assert got.fire == (z("2026-03-08 07:00"),)


def test_catch_up_cap_counts_without_building_the_list() -> None:
    # a per-second cron down for a year: 31.5M missed; bounded work, a bounded answer
    spec = ScheduleSpec(cron="* * * * * *", coalesce=False)
    now = z("2026-06-01 00:00")
    got = catch_up(spec, now - timedelta(days=365), now, max_runs=50, count_limit=1000)
    assert len(got.fire) == 50
    assert got.fire[0] == now - timedelta(days=1)  # the oldest inside the 1-day window
    assert got.fire == tuple(now - timedelta(days=1) + timedelta(seconds=i) for i in range(50))
    assert got.too_old == 1000 and got.over_cap == 1000 and got.exact is False
    coalesced = catch_up(ScheduleSpec(cron="* * * * * *"), now - timedelta(days=365), now, count_limit=1000)
    assert coalesced.fire == (now,) and coalesced.coalesced == 1000 and not coalesced.exact


def test_catch_up_every_counts_exactly() -> None:
    start = z("2025-01-01 00:00")
    spec = ScheduleSpec(every=timedelta(minutes=1), start=start)
    now = z("2026-06-01 00:00")
    got = catch_up(spec, now - timedelta(days=365), now, count_limit=10)
    assert got.fire == (now,)
    assert got.too_old == 364 * 1440 - 1  # (last, now - 1 day): both ends excluded
    assert got.coalesced == 1440 and got.exact is True
    with pytest.raises(InvalidScheduleError, match="1 or more"):
        catch_up(spec, start, now, max_runs=0)


# --- pauses, skips, preview ---


def test_pauses_skip_not_catch_up() -> None:
    spec = ScheduleSpec(cron=HOURLY)
    got = preview(
        spec,
        z("2026-05-01 00:00"),
        z("2026-05-01 06:00"),
        pauses=[(z("2026-05-01 01:30"), z("2026-05-01 04:00"))],
    )
    assert got == [z("2026-05-01 00:00"), z("2026-05-01 01:00"), z("2026-05-01 04:00"), z("2026-05-01 05:00")]
    # still paused (no resume): nothing after the pause
    still = preview(
        spec, z("2026-05-01 00:00"), z("2026-05-01 06:00"), pauses=[(z("2026-05-01 02:00"), None)]
    )
    assert still == [z("2026-05-01 00:00"), z("2026-05-01 01:00")]


def test_skip_drops_the_next_n_that_would_fire() -> None:
    spec = ScheduleSpec(cron=HOURLY)
    pause = [(z("2026-05-01 00:30"), z("2026-05-01 02:30"))]
    got = preview(spec, z("2026-05-01 00:00"), z("2026-05-01 06:00"), pauses=pause, skip=2)
    # 00:00 and 03:00 skipped (01:00, 02:00 were paused, not counted as skips)
    assert got == [z("2026-05-01 04:00"), z("2026-05-01 05:00")]
    assert preview(spec, z("2026-05-01 00:00"), z("2026-05-01 02:00"), skip=5) == []
    assert apply_pauses_and_skips([z("2026-05-01 00:00")], skip=0) == [z("2026-05-01 00:00")]


def test_preview_bounds_and_errors() -> None:
    spec = ScheduleSpec(cron="30 2 * * *", timezone="America/New_York")
    # [start, end): an occurrence at start is listed, one at end is not
    assert preview(spec, z("2026-03-07 07:30"), z("2026-03-09 06:30")) == [
        z("2026-03-07 07:30"),
        z("2026-03-08 07:00"),
    ]
    assert (
        len(preview(ScheduleSpec(cron="* * * * *"), z("2026-01-01 00:00"), z("2026-02-01 00:00"), limit=7))
        == 7
    )
    with pytest.raises(InvalidScheduleError, match="not after start"):
        preview(spec, z("2026-03-07 07:30"), z("2026-03-07 07:30"))
    with pytest.raises(InvalidScheduleError, match="skip"):
        preview(spec, z("2026-03-07 07:30"), z("2026-03-09 07:30"), skip=-1)
    with pytest.raises(InvalidScheduleError, match="ends before"):
        preview(
            spec,
            z("2026-03-07 07:30"),
            z("2026-03-09 07:30"),
            pauses=[(z("2026-03-08 00:00"), z("2026-03-07 00:00"))],
        )


# --- properties ---


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.integers(2, max(2, (hi - lo) // 2)).map(lambda n: f"*/{n}"),
        st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(value, min_size=2, max_size=4, unique=True).map(lambda vs: ",".join(map(str, sorted(vs)))),
    )


CRON5 = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)).map(" ".join)
CRON6 = st.tuples(_field(0, 59), _field(0, 59), _field(0, 23), _field(1, 31), st.just("*"), _field(0, 6)).map(
    " ".join
)
AFTER = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)
ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Tokyo",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ]
)


@settings(max_examples=150, deadline=None)
@given(cron=st.one_of(CRON5, CRON6), after=AFTER)
def test_utc_agrees_with_croniter(cron: str, after: datetime) -> None:
    fields = cron.split(" ")
    form = " ".join(fields[1:] + fields[:1]) if len(fields) == 6 else cron  # croniter: seconds last
    it = croniter(form, after)
    spec = ScheduleSpec(cron=cron)
    t = after
    for _ in range(5):
        got = next_occurrence(spec, t)
        assert got == it.get_next(datetime).astimezone(UTC)
        assert got is not None
        t = got


@settings(max_examples=150, deadline=None)
@given(cron=st.one_of(CRON5, CRON6), zone=ZONES, after=AFTER)
def test_any_zone_strictly_increasing_and_rules_hold(cron: str, zone: str, after: datetime) -> None:
    spec = ScheduleSpec(cron=cron, timezone=zone)
    found = list(occurrences(spec, after, after + timedelta(days=400), limit=60))
    assert found, "every generated cron fires within 400 days"
    assert all(a < b for a, b in itertools.pairwise(found))
    assert found[0] > after
    tz = ZoneInfo(zone)
    for t in found:
        local = t.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if not spec.every_hour:
            # not the second instant of a repeated wall time
            assert local.fold == 0 or wall.replace(fold=0).replace(tzinfo=tz).utcoffset() == local.utcoffset()
        # the wall time matches, or t is a spring change reached from a gap match
        if not croniter.match(_croniter_form(cron), wall):
            before = (t - timedelta(microseconds=1)).astimezone(tz)
            assert not spec.every_hour and before.utcoffset() != local.utcoffset()


def _croniter_form(cron: str) -> str:
    fields = cron.split(" ")
    return " ".join(fields[1:] + fields[:1]) if len(fields) == 6 else cron


@settings(max_examples=60, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59), zone=ZONES, year=st.integers(2020, 2030))
def test_a_daily_cron_fires_exactly_once_per_local_day(hour: int, minute: int, zone: str, year: int) -> None:
    tz = ZoneInfo(zone)
    spec = ScheduleSpec(cron=f"{minute} {hour} * * *", timezone=zone)
    lo = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)
    found = list(
        occurrences(
            spec,
            lo - timedelta(microseconds=1),
            datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC) - timedelta(microseconds=1),
        )
    )
    days = [t.astimezone(tz).date() for t in found]
    assert len(days) == len(set(days)) == (366 if year % 4 == 0 else 365)


def test_catch_up_over_the_autumn_fold_counts_real_instants() -> None:
    # New York, Nov 1: a rate cron fires at both 01:xx hours, a named-hour cron at the first only
    last, now = z("2026-11-01 04:30"), z("2026-11-01 07:30")
    rate = catch_up(ScheduleSpec(cron="0 * * * *", timezone="America/New_York", coalesce=False), last, now)
    assert rate.fire == (z("2026-11-01 05:00"), z("2026-11-01 06:00"), z("2026-11-01 07:00"))
    named = ScheduleSpec(cron="0 1 * * *", timezone="America/New_York", coalesce=False)
    assert catch_up(named, last, now).fire == (z("2026-11-01 05:00"),)
    coalesced = catch_up(ScheduleSpec(cron="*/30 * * * *", timezone="America/New_York"), last, now)
    assert coalesced.fire == (z("2026-11-01 07:30"),) and coalesced.coalesced == 5


def test_occurrences_limit_must_not_be_negative() -> None:
    with pytest.raises(InvalidScheduleError, match="limit"):
        list(
            occurrences(
                ScheduleSpec(cron="* * * * *"), z("2026-01-01 00:00"), z("2026-01-02 00:00"), limit=-1
            )
        )
    assert (
        list(
            occurrences(ScheduleSpec(cron="* * * * *"), z("2026-01-01 00:00"), z("2026-01-02 00:00"), limit=0)
        )
        == []
    )
