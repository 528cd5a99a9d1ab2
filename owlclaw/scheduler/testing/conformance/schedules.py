"""Schedules: time zones and DST, intervals and bounds, jitter, overlap,
catch-up, pause, skip, preview, backfill and occurrence identity
(docs/schedules.md).

The exact tests move a virtual clock across months; a backend without
``capabilities.schedules`` or without a virtual clock skips them, saying why.
The preview tests need no clock (a preview of 2030 is the same whatever the
time now): they run on every backend with schedules, and remove what they add.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owlclaw.scheduler.errors import InvalidScheduleError, TaskNotFoundError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["ScheduleConformance"]

TASK = "conf_occurrence"


def z(text: str) -> datetime:
    """``"2030-03-31T01:00"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class ScheduleConformance(ConformanceBase):
    """Every rule of schedules, as tests."""

    def need(self, scheduler: Scheduler, *, virtual: bool = True) -> None:
        caps = scheduler.capabilities
        if not caps.schedules:
            pytest.skip(f"the {scheduler.backend_name} backend keeps no schedules (capabilities.schedules)")
        if virtual and not caps.virtual_time:
            pytest.skip("an exact schedule test moves a virtual clock across days")

    async def remove(self, scheduler: Scheduler, *ids: str) -> None:
        """Remove what a test added (a real engine's namespace outlives the test)."""
        for sid in ids:
            await scheduler.remove_schedule(sid)

    async def move_to(self, scheduler: Scheduler, when: datetime) -> None:
        await self.advance(scheduler, (when - await self.now(scheduler)).total_seconds())

    async def fired(self, scheduler: Scheduler) -> list[dict[str, Any]]:
        """The finished runs of ``conf_occurrence``, oldest nominal time first."""
        runs = await scheduler.list_tasks(TASK, limit=1000)
        return sorted((r.result for r in runs if r.result is not None), key=lambda r: r["scheduled_for"])

    async def preview(self, scheduler: Scheduler, sid: str, start: str, end: str) -> list[str]:
        found = await scheduler.preview_schedule(sid, z(start), z(end))
        assert all(t.tzinfo is UTC for t in found), found
        return [t.strftime("%Y-%m-%dT%H:%M") for t in found]

    # time zones and DST

    async def test_paris_spring_gap_fires_once_at_the_change(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, cron="30 2 * * *", timezone="Europe/Paris")
        got = await self.preview(scheduler, sid, "2030-03-29T12:00", "2030-04-02T00:00")
        # 02:30 CET, then 02:30 does not exist on the 31st: 03:00 CEST, then 02:30 CEST
        assert got == ["2030-03-30T01:30", "2030-03-31T01:00", "2030-04-01T00:30"]
        await self.move_to(scheduler, z("2030-04-02T00:00"))
        fired = [r["scheduled_for"] for r in await self.fired(scheduler)]
        assert fired[-3:] == [
            "2030-03-30T01:30:00+00:00",
            "2030-03-31T01:00:00+00:00",
            "2030-04-01T00:30:00+00:00",
        ]
        # one a day, none twice (a listing may keep only the last days: Hatchet's window)
        assert len(fired) == len(set(fired)) and len({t[:10] for t in fired}) == len(fired)

    async def test_paris_autumn_fold_fires_its_first_instant_only(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        sid = await scheduler.add_schedule(TASK, cron="30 2 * * *", timezone="Europe/Paris")
        got = await self.preview(scheduler, sid, "2030-10-26T00:00", "2030-10-29T00:00")
        assert got == ["2030-10-26T00:30", "2030-10-27T00:30", "2030-10-28T01:30"]
        await self.remove(scheduler, sid)

    async def test_a_cron_naming_every_hour_fires_at_each_real_instant(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        sid = await scheduler.add_schedule(TASK, cron="*/30 * * * *", timezone="Europe/Paris")
        # the autumn fold: 02:00-03:00 happens twice, and fires twice
        got = await self.preview(scheduler, sid, "2030-10-26T23:45", "2030-10-27T02:15")
        assert [t[11:] for t in got] == ["00:00", "00:30", "01:00", "01:30", "02:00"], got
        # the spring gap: 02:00-03:00 never happens, nothing fires in it
        assert await self.preview(scheduler, sid, "2030-03-31T00:15", "2030-03-31T01:45") == [
            "2030-03-31T00:30", "2030-03-31T01:00", "2030-03-31T01:30",
        ]  # fmt: skip
        await self.remove(scheduler, sid)

    async def test_new_york_both_transitions(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        gap = await scheduler.add_schedule(TASK, cron="30 2 * * *", timezone="America/New_York")
        assert await self.preview(scheduler, gap, "2030-03-09T00:00", "2030-03-12T00:00") == [
            "2030-03-09T07:30", "2030-03-10T07:00", "2030-03-11T06:30",
        ]  # fmt: skip
        fold = await scheduler.add_cron(TASK, "30 1 * * *", timezone="America/New_York")
        assert await self.preview(scheduler, fold, "2030-11-02T00:00", "2030-11-05T00:00") == [
            "2030-11-02T05:30", "2030-11-03T05:30", "2030-11-04T06:30",
        ]  # fmt: skip
        await self.remove(scheduler, gap, fold)

    async def test_lord_howe_half_hour_shift(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        # October: 02:00 -> 02:30 (+10:30 -> +11); 02:15 is in the gap and fires at the change
        gap = await scheduler.add_schedule(TASK, cron="15 2 * * *", timezone="Australia/Lord_Howe")
        assert await self.preview(scheduler, gap, "2030-10-04T00:00", "2030-10-07T00:00") == [
            "2030-10-04T15:45", "2030-10-05T15:30", "2030-10-06T15:15",
        ]  # fmt: skip
        # April: 02:00 -> 01:30; 01:45 happens twice and fires at its first instant
        fold = await scheduler.add_schedule(TASK, cron="45 1 * * *", timezone="Australia/Lord_Howe")
        assert await self.preview(scheduler, fold, "2030-04-05T00:00", "2030-04-08T00:00") == [
            "2030-04-05T14:45", "2030-04-06T14:45", "2030-04-07T15:15",
        ]  # fmt: skip
        await self.remove(scheduler, gap, fold)

    async def test_a_zone_without_dst_keeps_its_offset(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        sid = await scheduler.add_schedule(TASK, cron="0 9 * * *", timezone="Asia/Tokyo")
        for start, end in (
            ("2030-03-30T12:00", "2030-04-01T12:00"),
            ("2030-10-26T12:00", "2030-10-28T12:00"),
        ):
            got = await self.preview(scheduler, sid, start, end)
            assert [t[11:] for t in got] == ["00:00", "00:00"], got
        assert (await scheduler.get_schedule(sid)).timezone == "Asia/Tokyo"
        await self.remove(scheduler, sid)

    # calendar edge cases

    async def test_leap_day_and_the_31st(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        leap = await scheduler.add_schedule(TASK, cron="0 0 29 2 *")
        assert await self.preview(scheduler, leap, "2030-01-01T00:00", "2041-01-01T00:00") == [
            "2032-02-29T00:00", "2036-02-29T00:00", "2040-02-29T00:00",
        ]  # fmt: skip
        on_31st = await scheduler.add_schedule(TASK, cron="0 12 31 * *", timezone="Europe/Paris")
        got = await self.preview(scheduler, on_31st, "2030-01-01T00:00", "2031-01-01T00:00")
        assert [t[5:10] for t in got] == ["01-31", "03-31", "05-31", "07-31", "08-31", "10-31", "12-31"]
        await self.remove(scheduler, leap, on_31st)

    async def test_every_with_start_and_end(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        start = z("2030-01-01T00:10")
        sid = await scheduler.add_schedule(
            TASK, every=timedelta(minutes=25), start=start, end=start + timedelta(minutes=75)
        )
        await self.move_to(scheduler, z("2030-01-01T03:00"))
        fired = [r["scheduled_for"][11:16] for r in await self.fired(scheduler)]
        assert fired == ["00:10", "00:35", "01:00"]  # the end is exclusive
        assert (await scheduler.get_schedule(sid)).next_run_at is None

    async def test_jitter_is_deterministic_and_bounded(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        await scheduler.add_schedule(TASK, cron="0 * * * *", jitter=600)
        await self.move_to(scheduler, z("2030-01-01T06:00"))
        runs = await scheduler.list_tasks(TASK, limit=100)
        lateness = sorted((r.started_at - r.scheduled_at).total_seconds() for r in runs)  # type: ignore[operator]
        assert len(runs) == 5 and all(0 <= s < 600 for s in lateness) and len(set(lateness)) > 1, lateness

    # identity

    async def test_each_run_knows_its_occurrence(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, cron="0 9 * * *", timezone="Europe/Paris")
        await self.move_to(scheduler, z("2030-01-03T00:00"))
        results = await self.fired(scheduler)
        assert [r["occurrence_id"] for r in results] == [
            f"{sid}@2030-01-01T08:00:00Z",
            f"{sid}@2030-01-02T08:00:00Z",
        ]
        runs = await scheduler.list_tasks(TASK)
        assert all(r.started_at == r.scheduled_at for r in runs)  # on time, to the microsecond

    async def test_two_clients_backfilling_at_once_fire_each_occurrence_once(
        self, scheduler: Scheduler
    ) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, cron="0 * * * *", overlap="allow_all")
        await scheduler.pause_schedule(sid, "backfill only")
        await self.move_to(scheduler, z("2030-01-01T05:30"))
        span = (z("2030-01-01T00:00"), z("2030-01-01T05:00"))
        both = await asyncio.gather(*(scheduler.backfill_schedule(sid, *span) for _ in range(2)))
        assert len(both[0]) + len(both[1]) == 5 and not set(both[0]) & set(both[1]), both
        await self.advance(scheduler, 1)
        fired = [r["scheduled_for"][11:16] for r in await self.fired(scheduler)]
        assert fired == ["00:00", "01:00", "02:00", "03:00", "04:00"]
        assert await scheduler.backfill_schedule(sid, *span) == []  # at most once, however often asked

    # overlap

    async def _overlap(self, scheduler: Scheduler, policy: str) -> tuple[list[str], list[str]]:
        """A run lasting 150 s fired every minute for 5 minutes: which occurrences
        started, and the final states of their runs."""
        end = z("2030-01-01T00:05:30")
        await scheduler.add_schedule(TASK, {"seconds": 150}, cron="* * * * *", overlap=policy, end=end)
        await self.move_to(scheduler, z("2030-01-01T00:05:30"))
        await self.advance(scheduler, 600)
        runs = await scheduler.list_tasks(TASK, limit=100)
        runs.sort(key=lambda r: r.scheduled_at or r.id)
        return [f"{r.scheduled_at:%M}" for r in runs], [r.state.value for r in runs]

    async def test_overlap_skip(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        started, _ = await self._overlap(scheduler, "skip")
        assert started == ["01", "04"]
        assert (await scheduler.list_schedules(TASK))[0].skipped == 3

    async def test_overlap_buffer_one(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        started, states = await self._overlap(scheduler, "buffer_one")
        # 01 runs to 03:30; 02 waits (03 skipped), starts at 03:30, ends 06:00; 04 waits, 05 skipped
        assert started == ["01", "02", "04"] and set(states) == {"succeeded"}

    async def test_overlap_allow_all(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        started, _ = await self._overlap(scheduler, "allow_all")
        assert started == ["01", "02", "03", "04", "05"]

    async def test_overlap_cancel_previous(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        started, states = await self._overlap(scheduler, "cancel_previous")
        assert started == ["01", "02", "03", "04", "05"]
        assert states == ["cancelled"] * 4 + ["succeeded"]

    # catch-up

    async def test_catch_up_after_the_worker_was_down(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        each = await scheduler.add_schedule(
            TASK, cron="0 * * * *", catchup_window=timedelta(hours=3), coalesce=False, overlap="allow_all"
        )
        one = await scheduler.add_schedule(TASK, {"one": 1}, cron="0 * * * *", catchup_window=3 * 3600)
        await self.move_to(scheduler, z("2030-01-01T01:30"))
        await scheduler.stop_worker()
        await self.move_to(scheduler, z("2030-01-01T07:30"))  # 02:00 .. 07:00 missed
        assert await self.preview(scheduler, one, "2030-01-01T00:00", "2030-01-01T08:30") == [
            "2030-01-01T07:00", "2030-01-01T08:00",
        ]  # fmt: skip
        await scheduler.start_worker()
        await self.advance(scheduler, 1)
        runs = await scheduler.list_tasks(TASK, limit=100)
        by = {
            sid: sorted(f"{r.scheduled_at:%H}" for r in runs if r.payload == p)
            for sid, p in ((each, {}), (one, {"one": 1}))
        }
        assert by[each] == ["01", "05", "06", "07"]  # within 3 h, each once; 02-04 too old
        assert by[one] == ["01", "07"]  # coalesced into the latest
        info = await scheduler.get_schedule(one)
        assert (info.skipped, info.coalesced) == (3, 2)

    async def test_catch_up_after_an_engine_outage(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        faults = getattr(scheduler, "faults", None)
        if faults is None:
            pytest.skip("no fault injection on this backend")
        sid = await scheduler.add_schedule(TASK, cron="*/10 * * * *")
        faults.outage(seconds=3600, start_in=300)  # 00:05 to 01:05
        await self.move_to(scheduler, z("2030-01-01T01:30"))
        fired = [r["scheduled_for"][11:16] for r in await self.fired(scheduler)]
        assert fired == ["01:00", "01:10", "01:20", "01:30"]  # 00:10..00:50 coalesced into 01:00
        assert (await scheduler.get_schedule(sid)).coalesced == 5

    # pause, skip, remove

    async def test_pause_skips_and_resume_does_not_catch_up(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, cron="0 * * * *")
        await scheduler.pause_schedule(sid, "ana: provider outage")
        info = await scheduler.get_schedule(sid)
        assert (info.paused, info.note, info.next_run_at) == (True, "ana: provider outage", None)
        assert await self.preview(scheduler, sid, "2030-01-01T00:00", "2030-01-02T00:00") == []
        await self.move_to(scheduler, z("2030-01-01T03:30"))
        await scheduler.resume_schedule(sid)
        info = await scheduler.get_schedule(sid)
        assert (info.paused, info.note, info.next_run_at, info.skipped) == (
            False,
            None,
            z("2030-01-01T04:00"),
            3,
        )
        await self.move_to(scheduler, z("2030-01-01T05:30"))
        assert [r["scheduled_for"][11:16] for r in await self.fired(scheduler)] == ["04:00", "05:00"]

    async def test_skip_next_occurrences_also_while_paused(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_cron(TASK, "0 * * * *")
        await scheduler.pause_schedule(sid)  # a plain cron pauses too
        await scheduler.skip_schedule(sid, 2)  # edited while paused
        await scheduler.resume_schedule(sid)
        assert (await scheduler.get_schedule(sid)).skips_pending == 2
        assert await self.preview(scheduler, sid, "2030-01-01T00:00", "2030-01-01T05:30") == [
            "2030-01-01T03:00", "2030-01-01T04:00", "2030-01-01T05:00",
        ]  # fmt: skip
        await self.move_to(scheduler, z("2030-01-01T05:30"))
        assert [r["scheduled_for"][11:16] for r in await self.fired(scheduler)] == ["03:00", "04:00", "05:00"]

    async def test_a_plain_cron_previewed_is_a_schedule_with_its_id(self, scheduler: Scheduler) -> None:
        self.need(scheduler, virtual=False)
        cron_id = await scheduler.add_cron(TASK, "0 * * * *", {"k": 1})
        assert await self.preview(scheduler, cron_id, "2030-01-01T00:30", "2030-01-01T03:00") == [
            "2030-01-01T01:00", "2030-01-01T02:00",
        ]  # fmt: skip
        listed = [s for s in await scheduler.list_schedules(TASK) if s.id == cron_id]
        assert [(s.expression, s.timezone, s.overlap.value, s.payload) for s in listed] == [
            ("0 * * * *", "UTC", "allow_all", {"k": 1})
        ], listed
        await scheduler.pause_schedule(cron_id, "quiet")
        info = await scheduler.get_schedule(cron_id)
        assert (info.paused, info.note) == (True, "quiet"), info
        await scheduler.remove_cron(cron_id)  # a cron's call, on what is now a schedule
        assert cron_id not in [s.id for s in await scheduler.list_schedules(TASK)]

    async def test_a_schedule_edited_while_paused_stays_paused_then_follows_its_new_rule(
        self, scheduler: Scheduler
    ) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, {"v": 1}, cron="0 * * * *")
        await self.move_to(scheduler, z("2030-01-01T01:30"))
        await scheduler.pause_schedule(sid, "moving to Paris mornings")
        await scheduler.update_schedule(sid, cron="30 9 * * *", timezone="Europe/Paris", payload={"v": 2})
        info = await scheduler.get_schedule(sid)
        assert (info.expression, info.timezone, info.paused, info.note, info.payload) == (
            "30 9 * * *",
            "Europe/Paris",
            True,
            "moving to Paris mornings",
            {"v": 2},
        )
        with pytest.raises(InvalidScheduleError):  # a bad edit changes nothing
            await scheduler.update_schedule(sid, timezone="Europe/Pariss")
        assert (await scheduler.get_schedule(sid)).timezone == "Europe/Paris"
        await scheduler.resume_schedule(sid)
        await self.move_to(scheduler, z("2030-01-03T00:00"))
        fired = await scheduler.list_tasks(TASK, limit=100)
        assert sorted((f"{r.scheduled_at:%d %H:%M}", r.payload["v"]) for r in fired) == [
            ("01 01:00", 1), ("01 08:30", 2), ("02 08:30", 2),
        ]  # fmt: skip

    async def test_a_schedule_removed_while_paused_is_gone(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(TASK, cron="0 * * * *", timezone="Europe/Paris")
        await scheduler.pause_schedule(sid, "to be removed")
        await scheduler.remove_schedule(sid)
        assert await scheduler.list_schedules(TASK) == []
        for call in (scheduler.get_schedule(sid), scheduler.resume_schedule(sid), scheduler.remove_cron(sid)):
            with pytest.raises(TaskNotFoundError):
                await call
        await self.move_to(scheduler, z("2030-01-01T03:00"))
        assert await self.fired(scheduler) == []

    # backfill

    async def test_backfill_fires_what_was_skipped_with_its_nominal_time(self, scheduler: Scheduler) -> None:
        self.need(scheduler)
        sid = await scheduler.add_schedule(
            TASK, cron="0 9 * * *", timezone="Europe/Paris", overlap="buffer_one"
        )
        await scheduler.pause_schedule(sid, "holiday")
        await self.move_to(scheduler, z("2030-01-05T00:00"))
        await scheduler.resume_schedule(sid)
        ids = await scheduler.backfill_schedule(sid, z("2030-01-02T00:00"), z("2030-01-05T00:00"))
        assert len(ids) == 1  # the first starts, one waits (buffer_one), the third is skipped
        await self.advance(scheduler, 60)
        fired = [r["scheduled_for"] for r in await self.fired(scheduler)]
        assert fired == ["2030-01-02T08:00:00+00:00", "2030-01-03T08:00:00+00:00"]
