"""Every task command of ``owlclaw-scheduler`` on the memory backend.

``main_async(argv, scheduler)`` runs one command on a scheduler the test
owns, so several commands see the same in-memory state, on a virtual clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cli_runner import Cap, cli

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler.cli import main_async
from owlclaw.scheduler.cli.output import parse_at, parse_duration
from owlclaw.scheduler.errors import InvalidScheduleError
from owlclaw.scheduler.testing import register_conformance_tasks


@pytest.fixture
def sched(owlclaw_scheduler: MemoryScheduler) -> MemoryScheduler:
    register_conformance_tasks(owlclaw_scheduler)
    return owlclaw_scheduler


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "hint"), [("0s", "more than zero"), ("ten", "90s, 10m"), ("5x", "90s, 10m")]
)
def test_bad_durations_say_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(InvalidScheduleError, match=hint):
        parse_duration(text)


def test_at_needs_a_timezone() -> None:
    assert parse_at("2026-11-26T09:00:00Z").utcoffset() == timedelta(0)
    with pytest.raises(InvalidScheduleError, match="add Z for UTC"):
        parse_at("2026-11-26T09:00:00")
    with pytest.raises(InvalidScheduleError, match="ISO 8601"):
        parse_at("tomorrow")


async def test_run_wait_prints_the_result(sched: MemoryScheduler, capsys: Cap) -> None:
    code, out, _ = await cli(sched, capsys, "run", "conf_echo", "--payload", '{"value": 7}', "--wait")
    assert code == 0
    assert out["state"] == "succeeded" and out["result"] == 7 and out["payload"] == {"value": 7}


async def test_run_without_wait_returns_the_id_at_once(sched: MemoryScheduler, capsys: Cap) -> None:
    code, out, _ = await cli(sched, capsys, "run", "conf_echo", "--payload", '{"value": 1}')
    assert code == 0 and out["state"] == "queued"
    assert (await sched.wait_for_task(out["id"])).result == 1


async def test_a_failed_run_exits_4_with_its_error(sched: MemoryScheduler, capsys: Cap) -> None:
    code, out, _ = await cli(sched, capsys, "run", "conf_fail", "--wait")
    assert code == 4
    assert out["state"] == "failed" and "boom" in out["error"]


async def test_schedule_status_list_cancel(sched: MemoryScheduler, capsys: Cap) -> None:
    now = sched.clock.now()
    code, out, _ = await cli(
        sched, capsys, "schedule", "conf_echo", "--in", "10m", "--payload", '{"value": 2}'
    )
    assert code == 0 and out["state"] == "scheduled"
    task_id = out["id"]
    code, rows, _ = await cli(sched, capsys, "list", "--scheduled")
    assert [r["id"] for r in rows] == [task_id]
    assert rows[0]["scheduled_at"] == (now + timedelta(minutes=10)).isoformat()
    code, out, _ = await cli(sched, capsys, "status", task_id)
    assert out["state"] == "scheduled"
    code, out, _ = await cli(sched, capsys, "cancel", task_id)
    assert code == 0 and out == {"id": task_id, "cancelled": True, "state": "cancelled"}
    code, rows, _ = await cli(sched, capsys, "list", "--scheduled")
    assert rows == []
    await sched.advance(3600)
    assert (await sched.get_task_status(task_id)).state.value == "cancelled"


async def test_cancel_of_a_finished_run_says_so(sched: MemoryScheduler, capsys: Cap) -> None:
    task_id = await sched.run_task("conf_echo", {"value": 1})
    await sched.wait_for_task(task_id)
    code = await main_async(["cancel", task_id], sched)
    assert code == 0
    assert "already finished (succeeded)" in capsys.readouterr().err


async def test_schedule_at_and_status_wait(sched: MemoryScheduler, capsys: Cap) -> None:
    at = (sched.clock.now() + timedelta(hours=2)).isoformat()
    code, out, _ = await cli(sched, capsys, "schedule", "conf_echo", "--at", at, "--payload", '{"value": 3}')
    assert code == 0 and out["scheduled_at"] == at
    code, out, _ = await cli(sched, capsys, "status", out["id"], "--wait", "--timeout", "10800")
    assert code == 0 and out["result"] == 3


async def test_status_wait_times_out_with_exit_5(sched: MemoryScheduler, capsys: Cap) -> None:
    _, out, _ = await cli(sched, capsys, "schedule", "conf_echo", "--in", "1h")
    code, _, err = await cli(sched, capsys, "status", out["id"], "--wait", "--timeout", "60")
    assert code == 5 and "still scheduled" in err


async def test_schedule_wait_runs_it(sched: MemoryScheduler, capsys: Cap) -> None:
    code, out, _ = await cli(
        sched, capsys, "schedule", "conf_echo", "--in", "30s", "--wait", "--payload", "{}"
    )
    assert code == 0 and out["state"] == "succeeded"


async def test_list_filters_runs_by_task_and_state(sched: MemoryScheduler, capsys: Cap) -> None:
    ok = await sched.run_task("conf_echo", {"value": 1})
    bad = await sched.run_task("conf_fail")
    await sched.run_until_idle()
    _, rows, _ = await cli(sched, capsys, "list", "--state", "failed")
    assert [r["id"] for r in rows] == [bad]
    _, rows, _ = await cli(sched, capsys, "list", "--task", "conf_echo")
    assert [r["id"] for r in rows] == [ok]


async def test_crons_add_list_remove(sched: MemoryScheduler, capsys: Cap) -> None:
    code, out, _ = await cli(sched, capsys, "crons", "add", "conf_cron_target", "* 9-16 * * 1-5")
    assert code == 0 and out["expression"] == "* 9-16 * * 1-5" and out["next_run_at"]
    cron_id = out["id"]
    _, rows, _ = await cli(sched, capsys, "crons", "list", "--task", "conf_cron_target")
    assert [r["id"] for r in rows] == [cron_id]
    code, out, _ = await cli(sched, capsys, "crons", "remove", cron_id)
    assert code == 0 and out["removed"] is True
    code, _, err = await cli(sched, capsys, "crons", "remove", cron_id)
    assert code == 3 and "list_crons" in err


async def test_people_get_tables(sched: MemoryScheduler, capsys: Cap) -> None:
    await sched.schedule_task("conf_echo", {"value": 1}, delay_seconds=60)
    assert await main_async(["list", "--scheduled"], sched) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "TASK", "STATE", "SCHEDULED_AT", "STARTED_AT", "ATTEMPTS"]
    assert "conf_echo" in row and "scheduled" in row


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "no_such_task"], 3, "no_such_task"),
        (["status", "no-such-id"], 3, "no task with id"),
        (["cancel", "no-such-id"], 3, "no task with id"),
        (["run", "conf_echo", "--payload", "{bad"], 2, "--payload is not valid JSON"),
        (["run", "conf_echo", "--payload", "[1, 2]"], 2, "JSON object"),
        (["schedule", "conf_echo"], 2, "one of --in"),
        (["schedule", "conf_echo", "--in", "1m", "--at", "2030-01-01T00:00:00Z"], 2, "one of --in"),
        (["schedule", "conf_echo", "--in=-5m"], 2, "duration"),
        (["schedule", "conf_echo", "--in", "0s"], 2, "more than zero"),
        (["run"], 2, "TASK"),
        (["schedule", "conf_echo", "--at", "2030-01-01T00:00:00"], 2, "timezone"),
        (["crons", "add", "conf_cron_target", "61 * * * *"], 2, "61"),
        (["list", "--scheduled", "--state", "failed"], 2, "--state filters runs"),
    ],
)
async def test_bad_input_exits_with_the_fix(
    sched: MemoryScheduler, capsys: Cap, argv: list[str], code: int, message: str
) -> None:
    assert await main_async(argv, sched) == code
    assert message in capsys.readouterr().err
