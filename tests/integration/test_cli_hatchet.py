"""``owlclaw-scheduler`` against the real engine, as an operator runs it:
a subprocess per command, configured by OWLCLAW_CONFIG and the token in the
environment, with a worker of the conformance app in another process."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import start_worker

pytestmark = pytest.mark.integration

APP = "owlclaw.scheduler.testing.app:scheduler"


@dataclasses.dataclass
class Cli:
    engine: Any
    config_path: Path

    def __call__(self, *argv: str, app: bool = True, timeout: float = 120) -> tuple[int, Any, str]:
        """Run a command with --json: (exit code, parsed stdout or None, stderr)."""
        command = [sys.executable, "-m", "owlclaw.scheduler.cli", *argv, "--json"]
        if app:
            command += ["--app", APP]
        proc = subprocess.run(
            command,
            env=self.engine.worker_env(self.config_path),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert self.engine.token not in proc.stdout + proc.stderr
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, out, proc.stderr


def _cli(engine: Any, directory: Path, **settings: Any) -> Cli:
    path = directory / f"cli-{uuid.uuid4().hex[:6]}.yaml"
    document = {"scheduler": {"backend": "hatchet", "hatchet": engine.settings(**settings)}}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return Cli(engine, path)


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Any:
    return dataclasses.replace(hatchet_engine, namespace=f"owlclaw-cli-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def cli(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return _cli(engine, tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def worker(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    proc = start_worker(engine, tmp_path_factory.mktemp("cli-workers"), name="cli", app=APP)
    yield proc
    proc.stop()


def test_doctor_finds_no_worker_then_one(cli: Cli, engine: Any, worker: Any, tmp_path: Path) -> None:
    code, findings, _ = cli("doctor", app=False)
    by_check = {f["check"]: f for f in findings}
    assert code == 0, findings
    assert by_check["connect"]["level"] == "ok"
    assert by_check["engine"]["level"] == "ok" and "v0.105.0" in by_check["engine"]["detail"]
    assert by_check["sdk"]["level"] == "ok"
    assert by_check["workers"]["level"] == "ok" and "cli" in by_check["workers"]["detail"]

    lonely = _cli(engine, tmp_path, namespace=f"owlclaw-nobody-{uuid.uuid4().hex[:6]}")
    code, findings, _ = lonely("doctor", app=False)
    workers = {f["check"]: f for f in findings}["workers"]
    assert code == 0 and workers["level"] == "warn"
    assert "owlclaw-scheduler worker" in workers["fix"]


def test_run_wait_and_a_failing_run(cli: Cli, worker: Any) -> None:
    code, out, _ = cli("run", "conf_echo", "--payload", '{"value": "hi"}', "--wait", "--timeout", "60")
    assert code == 0 and out["state"] == "succeeded" and out["result"] == "hi"
    code, out, _ = cli("run", "conf_fail", "--wait", "--timeout", "60")
    assert code == 4 and out["state"] == "failed" and "boom" in out["error"]


def test_schedule_list_status_cancel(cli: Cli, worker: Any) -> None:
    code, out, _ = cli("schedule", "conf_echo", "--in", "1h", "--payload", '{"value": 1}')
    assert code == 0 and out["state"] == "scheduled"
    task_id = out["id"]
    # status, list and cancel need no app: ids are enough
    code, rows, _ = cli("list", "--scheduled", app=False)
    assert code == 0 and task_id in [r["id"] for r in rows]
    code, out, _ = cli("status", task_id, app=False)
    assert code == 0 and out["state"] == "scheduled"
    code, out, _ = cli("status", task_id, "--wait", "--timeout", "2", app=False)
    assert code == 5
    code, out, _ = cli("cancel", task_id, app=False)
    assert code == 0 and out["cancelled"] is True and out["state"] == "cancelled"
    code, rows, _ = cli("list", "--scheduled", app=False)
    assert task_id not in [r["id"] for r in rows]


def test_schedule_wait_runs_on_the_worker(cli: Cli, worker: Any) -> None:
    code, out, _ = cli(
        "schedule", "conf_echo", "--in", "2s", "--payload", '{"value": 5}', "--wait", "--timeout", "60"
    )
    assert code == 0 and out["result"] == 5
    code, rows, err = cli("list", "--task", "conf_echo", "--state", "succeeded", app=False)
    assert code == 0, err
    assert out["id"] in [r["id"] for r in rows]


def test_crons_add_list_remove(cli: Cli) -> None:
    code, out, _ = cli("crons", "add", "conf_cron_target", "0 9 * * 1-5", "--payload", '{"k": 1}')
    assert code == 0 and out["expression"] == "0 9 * * 1-5"
    cron_id = out["id"]
    code, rows, _ = cli("crons", "list", "--task", "conf_cron_target", app=False)
    assert [r["id"] for r in rows] == [cron_id] and rows[0]["payload"] == {"k": 1}
    code, out, _ = cli("crons", "remove", cron_id, app=False)
    assert code == 0 and out["removed"] is True
    code, _, err = cli("crons", "remove", cron_id, app=False)
    assert code == 3 and "list_crons" in err


def test_errors_exit_with_their_codes(cli: Cli, engine: Any, tmp_path: Path) -> None:
    code, _, err = cli("status", str(uuid.uuid4()), app=False)
    assert code == 3
    code, _, err = cli("run", "conf_echo", app=False)
    assert code == 3 and "--app" in err
    code, _, err = cli("crons", "add", "conf_cron_target", "not a cron")
    assert code == 2
    unreachable = _cli(engine, tmp_path, host_port="127.0.0.1:9", connect_timeout_seconds=2)
    code, _, err = unreachable("status", "x", app=False)
    assert code == 6 and "127.0.0.1:9" in err


def test_config_show_check_and_backends(cli: Cli, engine: Any) -> None:
    code, out, _ = cli("config", "show", app=False)
    assert code == 0
    assert out["hatchet"]["api_token"] == "**********"
    assert out["hatchet"]["namespace"] == engine.namespace
    code, out, _ = cli("config", "check", app=False)
    assert code == 0 and out["backend"] == "hatchet"
    code, rows, _ = cli("backends", app=False)
    assert {r["name"]: r["status"] for r in rows}["hatchet"] == "ready"
