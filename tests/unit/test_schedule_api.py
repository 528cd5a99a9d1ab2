"""The schedule API on the kit base: bad input raises typed errors at the call,
and a backend without ``capabilities.schedules`` says which method it lacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler import Capabilities, CronInfo, ScheduleInfo, TaskContext
from owlclaw.scheduler.errors import (
    InvalidCronError,
    InvalidScheduleError,
    NotSupportedError,
    TaskDefinitionError,
    TaskNotFoundError,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class NoSchedules(MemoryScheduler):
    """A backend that keeps no schedules (as Hatchet today)."""

    backend_name = "noschedules"
    capabilities = Capabilities(in_process=True, virtual_time=True, start_worker=True)


def _app(scheduler: MemoryScheduler) -> MemoryScheduler:
    @scheduler.task()
    async def job(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        when = ctx.scheduled_for
        return {"scheduled_for": when and when.isoformat(), "occurrence_id": ctx.occurrence_id}

    return scheduler


def test_cron_info_is_schedule_info() -> None:
    assert CronInfo is ScheduleInfo
    info = CronInfo(id="c", task_name="t", expression="* * * * *", payload={}, next_run_at=None)
    assert (info.timezone, info.paused, info.note, info.overlap) == ("UTC", False, None, "allow_all")


async def test_a_backend_without_schedules_names_the_method_and_itself() -> None:
    async with _app(NoSchedules(clock=VirtualClock(T0))) as s:
        cron_id = await s.add_cron("job", "0 9 * * *")  # UTC crons work as before
        assert [c.id for c in await s.list_schedules()] == [cron_id]
        assert (await s.get_schedule(cron_id)).expression == "0 9 * * *"
        calls = {
            "add_schedule()": s.add_schedule("job", cron="0 9 * * *"),
            "add_cron(timezone='Europe/Paris')": s.add_cron("job", "0 9 * * *", timezone="Europe/Paris"),
            "pause_schedule()": s.pause_schedule(cron_id, "ops"),
            "resume_schedule()": s.resume_schedule(cron_id),
            "skip_schedule()": s.skip_schedule(cron_id, 2),
            "preview_schedule()": s.preview_schedule(cron_id, T0, T0 + timedelta(days=1)),
            "backfill_schedule()": s.backfill_schedule(cron_id, T0 - timedelta(days=1), T0),
            "update_schedule()": s.update_schedule(cron_id, jitter=5),
        }
        for method, call in calls.items():
            with pytest.raises(NotSupportedError) as caught:
                await call
            assert method in str(caught.value) and "noschedules backend" in str(caught.value)
            assert "capabilities.schedules is False" in str(caught.value)
        await s.remove_schedule(cron_id)
        assert await s.list_crons() == []
        with pytest.raises(TaskNotFoundError):
            await s.get_schedule(cron_id)


def test_a_backend_without_schedules_refuses_a_zoned_task_cron() -> None:
    s = NoSchedules(clock=VirtualClock(T0))
    with pytest.raises(TaskDefinitionError, match="UTC only"):

        @s.task(cron="0 9 * * *", timezone="Europe/Paris")
        async def digest(payload: dict[str, Any], ctx: TaskContext) -> None: ...


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"timezone": "Europe/Paris"}, "without cron="),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"cron": "0 9 * * *", "timezone": 5}, "give an IANA name"),
    ],
)
def test_task_timezone_is_checked_at_declaration(declared: dict[str, Any], message: str) -> None:
    s = MemoryScheduler(clock=VirtualClock(T0))
    with pytest.raises(TaskDefinitionError, match=message):
        s.task("t", **declared)(lambda payload, ctx: None)


def _bad_calls(s: MemoryScheduler) -> list[tuple[Any, type[Exception], str]]:
    naive = datetime(2030, 1, 1)
    return [
        (s.add_schedule("job"), InvalidScheduleError, "exactly one of cron="),
        (s.add_schedule("job", cron="* * * * *", every=timedelta(minutes=1)), InvalidScheduleError, "both"),
        (s.add_schedule("job", every=timedelta(minutes=5)), InvalidScheduleError, "every= needs start="),
        (s.add_schedule("job", cron="0 9 * * *", timezone="Nowhere/Land"), InvalidScheduleError, "unknown"),
        (s.add_schedule("job", cron="0 61 * * *"), InvalidCronError, ""),
        (s.add_schedule("job", cron="* * * * *", start=naive), InvalidScheduleError, "naive"),
        (
            s.add_schedule("job", cron="* * * * *", start=T0, end=T0 - timedelta(1)),
            InvalidScheduleError,
            "is not after start",
        ),
        (s.add_schedule("job", cron="* * * * *", jitter=-1), InvalidScheduleError, "jitter=-1"),
        (s.add_schedule("job", cron="* * * * *", overlap="queue"), InvalidScheduleError, "'buffer_one'"),
        (s.add_schedule("job", cron="* * * * *", catchup_window=-5), InvalidScheduleError, "negative"),
        (s.add_schedule("job", cron="* * * * *", coalesce=1), InvalidScheduleError, "True or False"),
        (s.add_cron("job", "0 9 * * *", timezone="Europe/Pariss"), InvalidScheduleError, "Europe/Pariss"),
        (s.pause_schedule("x", note=42), InvalidScheduleError, "who paused"),  # type: ignore[arg-type]
        (s.skip_schedule("x", count=0), InvalidScheduleError, "int >= 1"),
        (s.skip_schedule("x", count=-2), InvalidScheduleError, "int >= 1"),
        (s.preview_schedule("x", naive, T0), InvalidScheduleError, "aware"),
        (s.preview_schedule("x", T0, T0), InvalidScheduleError, "is not after start"),
        (s.preview_schedule("x", T0, T0 + timedelta(1), limit=0), InvalidScheduleError, "limit"),
        (s.backfill_schedule("x", T0, T0 + timedelta(days=3)), InvalidScheduleError, "in the future"),
        (s.update_schedule("x", cron_expression="* * * * *"), TypeError, "got cron_expression"),
        (s.update_schedule("x"), TypeError, "nothing to change"),
        (s.update_schedule("nope", jitter=5), TaskNotFoundError, "nope"),
        (s.get_schedule("nope"), TaskNotFoundError, "list_schedules()"),
        (s.pause_schedule("nope"), TaskNotFoundError, "nope"),
        (s.backfill_schedule("nope", T0 - timedelta(1), T0), TaskNotFoundError, "nope"),
    ]


async def test_bad_schedule_calls_raise_typed_errors_saying_what_to_fix() -> None:
    async with _app(MemoryScheduler(clock=VirtualClock(T0))) as s:
        for call, error, text in _bad_calls(s):
            with pytest.raises(error) as caught:
                await call
            assert text in str(caught.value), f"{error.__name__}: {caught.value}"
        assert await s.list_schedules() == []  # nothing half-made


async def test_runs_no_schedule_fired_have_no_occurrence() -> None:
    async with _app(MemoryScheduler(clock=VirtualClock(T0))) as s:
        await s.start_worker()
        info = await s.wait_for_task(await s.run_task("job"))
        assert info.result == {"scheduled_for": None, "occurrence_id": None}


def test_sync_facade_has_the_schedule_methods() -> None:
    from owlclaw.scheduler.kit import BlockingScheduler
    from owlclaw.scheduler.protocol import Scheduler

    wanted = {n for n in vars(Scheduler) if "schedule" in n and not n.startswith("_")} - {"schedule_task"}
    missing = {n for n in wanted if not hasattr(BlockingScheduler, n)}
    assert wanted and not missing, f"BlockingScheduler lacks {sorted(missing)}"


async def test_occurrence_lateness_logged_and_skips_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from owlclaw.scheduler.observability import metrics

    recorded = metrics._metrics()
    async with _app(MemoryScheduler(clock=VirtualClock(T0))) as s:
        await s.start_worker()
        sid = await s.add_schedule("job", cron="0 * * * *", jitter=900)
        await s.skip_schedule(sid, 1)
        # each logger by name (as test_observability does): another test may have set a level on it
        caplog.set_level("INFO", logger="owlclaw.scheduler.runs")
        caplog.set_level("INFO", logger="owlclaw.scheduler.schedules")
        await s.advance(2 * 3600 + 900)  # 02:00 fires within its jitter, 03:00 not yet
        started = [r for r in caplog.records if getattr(r, "event", None) == "started"]
        assert len(started) == 1, [r.getMessage() for r in caplog.records]
        assert started[0].occurrence_id == f"{sid}@2030-01-01T02:00:00Z"  # type: ignore[attr-defined]
        lateness = started[0].lateness_seconds  # type: ignore[attr-defined]
        assert 0 < lateness < 900 and f"lateness_seconds={lateness}" in started[0].getMessage()
        skipped = [r for r in caplog.records if getattr(r, "event", None) == "occurrence_skipped"]
        assert [r.reason for r in skipped] == ["skip"]  # type: ignore[attr-defined]
    if recorded is not None:  # prometheus-client installed
        assert recorded.occurrences[("job", "skipped", "skip")][0] >= 1
        assert recorded.occurrences[("job", "fired", "")][0] >= 1
