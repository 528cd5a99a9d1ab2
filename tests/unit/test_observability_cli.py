"""``owlclaw-scheduler worker APP --metrics-port N`` serves Prometheus metrics
(memory backend, the worker in a subprocess, scraped over HTTP)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

from owlclaw.scheduler.cli import build_parser
from owlclaw.scheduler.polling import poll_until_blocking

WORKER = [sys.executable, "-m", "owlclaw.scheduler.cli", "worker", "obs_cli_app:scheduler"]
APP = textwrap.dedent(
    """
    from owlclaw.scheduler.registry import create_scheduler

    scheduler = create_scheduler()

    @scheduler.task(name="tick", cron="* * * * * *")  # every second
    async def tick(payload, ctx):
        if not await ctx.scheduler.list_scheduled_tasks("later"):
            await ctx.scheduler.schedule_task("later", delay_seconds=3600)

    @scheduler.task(name="later")
    async def later(payload, ctx): ...
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(url: str, want: list[str], proc: subprocess.Popen[bytes], timeout: float = 30) -> str:

    def read() -> str:
        assert proc.poll() is None, f"worker exited with {proc.returncode}"
        try:
            return str(urllib.request.urlopen(url, timeout=5).read().decode())
        except OSError:
            return ""

    return poll_until_blocking(
        read,
        lambda text: all(line in text for line in want),
        timeout=timeout,
        interval=0.3,
        what=f"{url} to show all of {want} (page read)",
    )


def test_the_worker_parser_takes_a_metrics_port() -> None:
    args = build_parser().parse_args(["worker", "app:scheduler", "--metrics-port", "9464"])
    assert args.metrics_port == 9464
    assert build_parser().parse_args(["worker", "app:scheduler"]).metrics_port is None


def test_worker_serves_metrics_on_the_given_port(tmp_path: Path) -> None:
    (tmp_path / "obs_cli_app.py").write_text(APP, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLCLAW_", "HATCHET_"))}
    env.update(PYTHONPATH=str(tmp_path), OWLCLAW_SCHEDULER_BACKEND="memory")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*WORKER, "--metrics-port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        text = scrape(
            f"http://127.0.0.1:{port}/metrics",
            [
                'owlclaw_scheduler_runs_total{state="succeeded",task="tick"}',
                'owlclaw_scheduler_pending_schedules{task="later"} 1.0',
                'owlclaw_scheduler_pending_schedules{task="tick"} 0.0',
                'owlclaw_scheduler_run_lateness_seconds_count{task="tick"}',
            ],
            proc,
        )
        assert 'owlclaw_scheduler_attempts_total{outcome="failed",task="tick"}' not in text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log_path.read_text()


def test_a_busy_port_stops_the_worker_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "obs_cli_app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLCLAW_", "HATCHET_"))}
    env.update(PYTHONPATH=str(tmp_path), OWLCLAW_SCHEDULER_BACKEND="memory")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = subprocess.run(
            [*WORKER, "--metrics-port", str(busy.getsockname()[1])],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert "pick a free --metrics-port" in result.stderr
