"""A worker in a subprocess, as a deployment runs it: start it, wait until the
engine lists it ACTIVE, signal it, stop it. Every integration test that needs a
worker process uses this one class."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from owlclaw.backends.hatchet.layout import DURABLE_SUFFIX
from owlclaw.scheduler.polling import PollTimeoutError, poll_until_blocking

CONFORMANCE_APP = "owlclaw.scheduler.testing.app:scheduler"
# importing the SDK alone can take 20 s on a loaded 2-core runner
WORKER_START_TIMEOUT = 90.0


def worker_command(app: str) -> list[str]:
    """``owlclaw-scheduler worker APP``."""
    return [sys.executable, "-m", "owlclaw.scheduler.cli", "worker", app]


def _sdk_client(engine: Any) -> Any:
    """A raw SDK client for ``engine`` (anything with token, host_port, server_url, namespace)."""
    from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet

    return Hatchet(
        config=ClientConfig(
            token=engine.token,
            host_port=engine.host_port,
            server_url=engine.server_url,
            namespace=engine.namespace,
            tls_config=ClientTLSConfig(strategy=getattr(engine, "tls_strategy", "none")),
        )
    )


class WorkerProcess:
    """One subprocess in a session of its own, its output in ``log_path``."""

    def __init__(
        self, command: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.command, self.env, self.log_path, self.cwd = command, env, log_path, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_active(self, engine: Any, name: str, timeout: float = WORKER_START_TIMEOUT) -> None:
        """Until ``engine`` lists the process's workers ACTIVE: ``name``, and
        ``name-durable`` when its start line names one (an app with durable
        tasks: hatchet/layout.py); the log in the error otherwise."""
        assert self.proc is not None
        sdk = _sdk_client(engine)
        proc = self.proc
        durable = name + DURABLE_SUFFIX

        def workers() -> list[tuple[str, Any]]:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}: {self.log_tail()}")
            return [(w.name, w.status) for w in sdk.workers.list().rows or []]

        def all_active(rows: list[tuple[str, Any]]) -> bool:
            names = [name, durable] if durable in self.log_tail(400) else [name]
            return all(any(n.endswith(x) and status == "ACTIVE" for n, status in rows) for x in names)

        try:
            poll_until_blocking(
                workers,
                all_active,
                timeout=timeout,
                what=f"worker {name} (and {durable} if it runs one) ACTIVE among the engine's workers",
            )
        except PollTimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from exc

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing drains."""
        if self.alive():
            self.signal(signal.SIGKILL)
            self.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    engine: Any, directory: Path, name: str | None = None, app: str = CONFORMANCE_APP
) -> WorkerProcess:
    """``owlclaw-scheduler worker APP`` for the conftest's ``engine``, ACTIVE when returned."""
    name = name or f"w{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / f"{name}.yaml"
    section = engine.settings(worker_name=name)
    if getattr(engine, "state_database_url", None):  # schedules on: the worker serves their links
        section["state_database_url"] = engine.state_database_url
    document = {"scheduler": {"backend": "hatchet", "hatchet": section}}
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    worker = WorkerProcess(worker_command(app), engine.worker_env(config_path), directory / f"{name}.log")
    worker.start().wait_active(engine, name)
    return worker
