"""``owlclaw-scheduler schedules ...`` on the memory backend, on a virtual clock
the test owns (``main_async(argv, scheduler)`` keeps the state between commands)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cli_runner import Cap, cli

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler.cli import main
from owlclaw.scheduler.testing import register_conformance_tasks

TASK = "conf_occurrence"


@pytest.fixture
def sched(owlclaw_scheduler: MemoryScheduler) -> MemoryScheduler:
    register_conformance_tasks(owlclaw_scheduler)
    return owlclaw_scheduler


async def test_list_and_show_say_zone_policies_and_pause(sched: MemoryScheduler, capsys: Cap) -> None:
    sid = await sched.add_schedule(TASK, cron="0 9 * * *", timezone="Europe/Paris", overlap="buffer_one")
    cron_id = await sched.add_cron(TASK, "*/5 * * * *")
    code, rows, _ = await cli(sched, capsys, "schedules", "list", "--task", TASK)
    assert code == 0 and sorted(r["id"] for r in rows) == sorted([sid, cron_id])
    code, row, _ = await cli(sched, capsys, "schedules", "pause", sid, "--note", "ana: holiday")
    assert code == 0 and (row["paused"], row["note"], row["next_run_at"]) == (True, "ana: holiday", None)
    code, row, _ = await cli(sched, capsys, "schedules", "show", sid)
    assert (row["timezone"], row["overlap"], row["rule"], row["paused"]) == (
        "Europe/Paris",
        "buffer_one",
        "0 9 * * *",
        True,
    )
    code, row, _ = await cli(sched, capsys, "schedules", "resume", sid)
    assert code == 0 and row["paused"] is False and row["next_run_at"] == "2030-01-01T08:00:00+00:00"
    # crons keep their own commands
    code, rows, _ = await cli(sched, capsys, "crons", "list")
    assert code == 0 and {r["id"] for r in rows} == {sid, cron_id}


async def test_preview_skip_and_backfill(sched: MemoryScheduler, capsys: Cap) -> None:
    sid = await sched.add_schedule(TASK, cron="30 2 * * *", timezone="Europe/Paris", overlap="allow_all")
    span = ("--start", "2030-03-30T00:00Z", "--end", "2030-04-02T00:00Z")
    code, rows, _ = await cli(sched, capsys, "schedules", "preview", sid, *span)
    assert [r["nominal"] for r in rows] == [
        "2030-03-30T01:30:00+00:00",
        "2030-03-31T01:00:00+00:00",  # 02:30 falls in the spring gap: at the change
        "2030-04-01T00:30:00+00:00",
    ]
    code, row, _ = await cli(
        sched, capsys, "schedules", "skip", TASK, "--count", "2"
    )  # a task's one schedule
    assert code == 0 and row["skips_pending"] == 2
    await sched.pause_schedule(sid)
    await sched.advance(3 * 86400)
    code, rows, _ = await cli(
        sched,
        capsys,
        "schedules",
        "backfill",
        sid,
        "--start",
        "2030-01-01T00:00Z",
        "--end",
        "2030-01-03T00:00Z",
    )
    assert code == 0 and len(rows) == 2
    await sched.advance(1)
    fired = sorted(r.scheduled_at.isoformat() for r in await sched.list_tasks(TASK))  # type: ignore[union-attr]
    assert fired == ["2030-01-01T01:30:00+00:00", "2030-01-02T01:30:00+00:00"]


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["schedules", "show", "nope"], 3, "no schedule with id 'nope'"),
        (
            ["schedules", "preview", "nope", "--start", "2030-01-01T00:00", "--end", "2030-01-02T00:00Z"],
            2,
            "--start",
        ),
        (["schedules", "skip", "x", "--count", "0"], 2, "count"),
        (["schedules", "preview", "x"], 2, "--start"),
    ],
)
async def test_bad_schedule_commands_exit_with_the_fix(
    sched: MemoryScheduler, capsys: Cap, argv: list[str], code: int, text: str
) -> None:
    got, _, err = await cli(sched, capsys, *argv)
    assert got == code and text in err, err


async def test_two_schedules_of_one_task_need_an_id(sched: MemoryScheduler, capsys: Cap) -> None:
    ids = [await sched.add_schedule(TASK, every=timedelta(hours=h), start=sched.clock.now()) for h in (1, 2)]
    code, _, err = await cli(sched, capsys, "schedules", "show", TASK)
    assert code == 3 and all(i in err for i in ids), err


def test_pausing_on_an_ephemeral_memory_session_says_it_would_change_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Cap
) -> None:
    for name in ("OWLCLAW_CONFIG", "OWLCLAW_SCHEDULER_BACKEND", "OWLCLAW_APP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    app = "owlclaw.scheduler.demo_app:scheduler"
    assert main(["schedules", "pause", "demo_heartbeat", "--app", app]) == 2
    assert "would change nothing" in capsys.readouterr().err
    assert main(["schedules", "list", "--app", app]) == 0
    assert "demo_heartbeat" in capsys.readouterr().out


async def test_crons_add_takes_a_time_zone(sched: MemoryScheduler, capsys: Cap) -> None:
    code, row, _ = await cli(sched, capsys, "crons", "add", TASK, "0 9 * * *", "--timezone", "Europe/Paris")
    assert code == 0 and row["next_run_at"] == "2030-01-01T08:00:00+00:00"
    code, _, err = await cli(sched, capsys, "crons", "add", TASK, "0 9 * * *", "--timezone", "Paris")
    assert code == 2 and "unknown timezone 'Paris'" in err
