import json
from typing import Any

import pytest

from owlclaw.scheduler.cli import main
from tests.demo_tour import assert_full_tour


def test_backends_lists_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "memory" in out and "ready" in out


def test_demo_shows_each_feature(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    assert main(["demo", "--backend", "memory", "--timeout", "30"]) == 0
    out = capsys.readouterr().out
    assert "'hello ada'" in out  # run now
    assert "'hello later'" in out  # delay
    assert "cancelled" in out  # cancel
    assert "'ok on attempt 3'" in out  # retries
    assert "'step 3: done'" in out  # self-scheduling
    assert "demo_heartbeat" in out and "'beat'" in out  # cron
    assert out.rstrip().endswith("tour complete")
    assert_full_tour(out)  # each step as the row of the run that showed it


def test_demo_exits_5_and_names_what_it_did_not_see(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    assert main(["demo", "--backend", "memory", "--timeout", "1"]) == 5
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert "gave up after 1s; not seen: after a delay, retries, self-scheduling" in last


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no-colon", "module:attribute"),
        ("owlclaw_no_such_mod:app", "cannot import"),
        ("owlclaw.scheduler.cli:main", "not a scheduler"),
    ],
)
def test_worker_explains_a_bad_app(app: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", app]) == 1
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- standalone


APP = "owlclaw.scheduler.demo_app:scheduler"
TOKEN = "eyJsecret-token-value-never-printed"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("OWLCLAW_CONFIG", "OWLCLAW_SCHEDULER_BACKEND", "OWLCLAW_APP", "HATCHET_CLIENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _hatchet_yaml(tmp_path: Any, host_port: str = "127.0.0.1:1") -> str:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(
        "scheduler:\n"
        "  backend: hatchet\n"
        "  hatchet:\n"
        "    mode: lite\n"
        f"    host_port: {host_port}\n"
        "    server_url: http://127.0.0.1:1\n"
        "    api_token: ${MY_TOKEN}\n"
        "    connect_timeout_seconds: 2\n"
        "    database_url: postgresql://hatchet:pg-password-123@localhost:5432/hatchet\n"
    )
    return str(path)


def test_run_on_memory_runs_in_this_process(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "demo_greet", "--app", APP, "--payload", '{"name": "ada"}', "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["result"] == "hello ada"
    assert "runs it in this process" in err


def test_schedule_on_memory_without_wait_refuses_to_lose_it(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schedule", "demo_greet", "--in", "5m", "--app", APP]) == 2
    assert "add --wait" in capsys.readouterr().err


def test_crons_add_on_memory_names_a_fix_that_exists(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["crons", "add", "demo_greet", "@daily", "--app", APP]) == 2
    err = capsys.readouterr().err
    assert "--wait" not in err  # `crons add` has no --wait
    assert "cron=" in err and "owlclaw-scheduler worker" in err


@pytest.mark.parametrize("limit", ["-1", "0", "ten"])
def test_list_refuses_a_limit_below_one(
    clean_env: None, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    assert main(["list", "--limit", limit, "--app", APP]) == 2
    assert ">= 1" in capsys.readouterr().err


def test_unknown_task_without_app_names_the_fix(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "demo_greet"]) == 3
    err = capsys.readouterr().err
    assert "demo_greet" in err and "--app myapp.tasks:scheduler" in err


def test_status_on_memory_explains_where_tasks_live(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "abc"]) == 3
    assert "only in the process that created them" in capsys.readouterr().err


def test_usage_errors_exit_2(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["status"]) == 2
    assert main(["--help"]) == 0


def test_crons_json_flag_works_before_or_after_the_action(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["crons", "list", "--json"], ["crons", "--json", "list"], ["crons", "--json"]):
        assert main([*argv, "--app", APP]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["task"] for r in rows] == ["demo_heartbeat"]


def test_config_show_masks_secrets(
    clean_env: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    path = _hatchet_yaml(tmp_path)
    assert main(["config", "show", "--config", path]) == 0
    assert main(["config", "show", "--config", path, "--json"]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out and "pg-password-123" not in out
    assert "api_token: '**********'" in out
    assert "hatchet:**********@localhost" in out
    shown = json.loads(out[out.index("{") :])
    assert shown["hatchet"]["host_port"] == "127.0.0.1:1"
    assert shown["source"] == path


def test_config_show_memory_defaults(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    assert "backend: memory" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scheduler: [unclosed", "not valid YAML"),
        ("scheduler:\n  backend: nope\n", "no scheduler backend named 'nope'"),
        ("scheduler:\n  memory:\n    slots: 0\n", "scheduler.memory.slots"),
        ("scheduler:\n  memory:\n    slot: 3\n", "unknown setting"),
        ("scheduler:\n  backend: hatchet\n  hatchet:\n    mode: lite\n", "api_token"),
    ],
)
def test_config_check_names_the_fix(
    clean_env: None, tmp_path: Any, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["config", "check", "--config", str(path)]) in (2, 3)
    assert message in capsys.readouterr().err


def test_config_check_ok(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_doctor_on_memory_is_healthy(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] connect" in out and "FAIL" not in out


def test_doctor_reports_a_bad_config_with_its_fix(
    clean_env: None, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scheduler:\n  memory:\n    slots: -1\n")
    assert main(["doctor", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] settings" in out and "fix:" in out


def test_doctor_reports_an_unreachable_engine_without_the_token(
    clean_env: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert main(["doctor", "--config", _hatchet_yaml(tmp_path), "--json"]) == 1
    out, err = capsys.readouterr()
    findings = {f["check"]: f for f in json.loads(out)}
    assert findings["connect"]["level"] == "fail"
    assert "127.0.0.1:1" in findings["connect"]["detail"]
    assert TOKEN not in out + err


def test_unreachable_engine_exits_6(
    clean_env: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert main(["status", "some-id", "--config", _hatchet_yaml(tmp_path)]) == 6
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and TOKEN not in err


def test_worker_on_memory_serves_until_sigterm(clean_env: None) -> None:
    import os
    import signal
    import subprocess
    import sys

    from owlclaw.scheduler.polling import poll_until_blocking

    env = dict(os.environ, OWLCLAW_SCHEDULER_BACKEND="memory")
    proc = subprocess.Popen(
        [sys.executable, "-m", "owlclaw.scheduler.cli", "worker", APP],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = poll_until_blocking(
        proc.stderr.readline,
        lambda line: "worker running" in line,
        timeout=30,
        interval=0,  # readline() itself waits for the next line
        what="the worker's 'worker running' line on stderr (last line read)",
    )
    assert "memory worker running 4 tasks" in line
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


async def test_status_wait_shows_progress_on_a_terminal(
    owlclaw_scheduler: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from owlclaw.scheduler.cli import main_async
    from owlclaw.scheduler.testing import register_conformance_tasks

    register_conformance_tasks(owlclaw_scheduler)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    task_id = await owlclaw_scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=60)
    assert await main_async(["status", task_id, "--wait"], owlclaw_scheduler) == 0
    captured = capsys.readouterr()
    assert f"waiting for {task_id}: " in captured.err
    assert "succeeded" in captured.out
