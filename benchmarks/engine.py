"""One real Hatchet engine for the engine benchmarks, and the two ways to call it.

``EngineSession.start()`` starts a private PostgreSQL and the locally built
hatchet-lite (``owlclaw.backends.hatchet.local.engine``), then one worker process
running ``owlclaw-scheduler worker benchmarks.app:scheduler``. ``clients()``
connects, inside the caller's event loop, an owlclaw ``HatchetScheduler`` and a
plain ``hatchet_sdk.Hatchet`` client on the same namespace, so both trigger the
very same workflows (``<namespace>_bench_probe`` ...) on the same engine and
the same worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import raw_worker
from benchmarks.app import PROBE_ENV, declare_bench_tasks
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.local.engine import EngineConnection, LocalEngine
from owlclaw.backends.hatchet.local.postgres import LocalPostgres

__all__ = ["Clients", "EngineSession", "terminate"]

ROOT = Path(__file__).resolve().parent.parent
APP = "benchmarks.app:scheduler"
WORKER_SLOTS = 200  # enough for every concurrent run and durable sleep of the benchmarks
_CLIENT_ENV_PREFIXES = ("HATCHET_CLIENT_", "OWLCLAW_")


@dataclass
class Clients:
    """The owlclaw scheduler and the raw SDK objects, connected to one engine."""

    owlclaw: Any  # HatchetScheduler with the bench tasks
    raw: Any  # hatchet_sdk.Hatchet
    raw_tasks: dict[str, Any]  # task name -> Standalone of the same workflow


class EngineSession:
    """PostgreSQL + hatchet-lite + one worker process; ``stop()`` ends all three."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}"
        self.probe_file = workdir / "probe.jsonl"
        self._pg: LocalPostgres | None = None
        self._engine: LocalEngine | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._raw_worker: subprocess.Popen[bytes] | None = None
        self.conn: EngineConnection | None = None
        self.startup_seconds = 0.0

    # lifecycle

    def start(self) -> EngineSession:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._pg = LocalPostgres().start()
            self._engine = LocalEngine(self._pg.database_url("hatchet"), startup_timeout=180)
            self.conn = self._engine.start()
            self._start_worker()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _settings(self) -> dict[str, Any]:
        assert self.conn is not None
        return {
            "mode": "lite",
            "host_port": self.conn.host_port,
            "server_url": self.conn.server_url,
            "tls_strategy": "none",
            "namespace": self.namespace,
            "slots": WORKER_SLOTS,
        }

    def _worker_env(self) -> dict[str, str]:
        assert self.conn is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
        env.update(
            HATCHET_CLIENT_TOKEN=self.conn.token,
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
            PYTHONUNBUFFERED="1",
        )
        env[PROBE_ENV] = str(self.probe_file)
        return env

    def _spawn(self, argv: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _start_worker(self) -> None:
        config = self.workdir / "worker.yaml"
        document = {
            "scheduler": {"backend": "hatchet", "hatchet": {**self._settings(), "worker_name": "bench"}}
        }
        config.write_text(yaml.safe_dump(document), encoding="utf-8")
        env = self._worker_env()
        env.update(OWLCLAW_CONFIG=str(config), OWLCLAW_SCHEDULER_BACKEND="hatchet")
        self._worker = self._spawn(["-m", "owlclaw.scheduler.cli", "worker", APP], env, "worker.log")
        asyncio.run(self._wait_active(self._worker, "bench", "worker.log"))

    def start_raw_worker(self) -> None:
        """The raw SDK's worker (``benchmarks.raw_worker``), beside owlclaw's, on the same engine."""
        if self._raw_worker is not None:
            return
        assert self.conn is not None
        env = self._worker_env()
        env.update(
            HATCHET_CLIENT_HOST_PORT=self.conn.host_port,
            HATCHET_CLIENT_SERVER_URL=self.conn.server_url,
            HATCHET_CLIENT_NAMESPACE=self.namespace,
            HATCHET_CLIENT_TLS_STRATEGY="none",
        )
        self._raw_worker = self._spawn(
            ["-m", "benchmarks.raw_worker", str(WORKER_SLOTS)], env, "raw-worker.log"
        )
        asyncio.run(self._wait_active(self._raw_worker, raw_worker.WORKER, "raw-worker.log"))

    async def _wait_active(
        self, process: subprocess.Popen[bytes], name: str, log_name: str, timeout: float = 90.0
    ) -> None:
        raw = self._raw_client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the {name} worker exited with {process.returncode}: {self.worker_log(log_name)}"
                )
            rows = (await raw.workers.aio_list()).rows or []
            if any(w.name.endswith(name) and w.status == "ACTIVE" for w in rows):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"the {name} worker was not ACTIVE after {timeout:g}s: {self.worker_log(log_name)}"
        )

    def pids(self) -> dict[str, int]:
        """Process ids of the engine, PostgreSQL's postmaster and the worker (for CPU readings)."""
        assert self._engine is not None and self._pg is not None and self._worker is not None
        engine_pid = self._engine.pid
        if engine_pid is None:
            raise RuntimeError("the engine is not running: no process id to read its CPU from")
        postmaster = (self._pg.data_dir / "postmaster.pid").read_text().split()[0]
        return {"engine": engine_pid, "postgres": int(postmaster), "worker": self._worker.pid}

    def worker_log(self, log_name: str = "worker.log", lines: int = 30) -> str:
        try:
            text = (self.workdir / log_name).read_text(errors="replace")
        except OSError:
            return "<no worker log>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in (self._raw_worker, self._worker):
            if process is not None:
                terminate(process)
        self._worker = self._raw_worker = None
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None

    # clients

    def _raw_client(self) -> Any:
        from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet

        assert self.conn is not None
        return Hatchet(
            config=ClientConfig(
                token=self.conn.token,
                host_port=self.conn.host_port,
                server_url=self.conn.server_url,
                namespace=self.namespace,
                tls_config=ClientTLSConfig(strategy="none"),
            )
        )

    @contextlib.asynccontextmanager
    async def clients(self) -> AsyncIterator[Clients]:
        """Connected clients for the running event loop (gRPC channels are per loop)."""
        from owlclaw.backends.hatchet.backend import HatchetScheduler

        assert self.conn is not None
        config = HatchetConfig.model_validate({"api_token": self.conn.token, **self._settings()})
        owlclaw = declare_bench_tasks(HatchetScheduler(config))
        raw = self._raw_client()
        # the same workflow names as the workers'; only triggered from here, never registered
        raw_tasks = {name: raw.task(name=name, input_validator=dict[str, Any])(_unused) for name in _TASKS}
        async with owlclaw:
            yield Clients(owlclaw, raw, raw_tasks)

    # what the worker's tasks recorded

    def probes(self) -> list[dict[str, Any]]:
        try:
            text = self.probe_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def wait_probes(self, keys: set[str], timeout: float) -> dict[str, list[dict[str, Any]]]:
        """Probe records for ``keys`` once every key has one, or at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, list[dict[str, Any]]] = {}
            for record in self.probes():
                if record.get("key") in keys:
                    found.setdefault(record["key"], []).append(record)
            if len(found) >= len(keys) or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.25)

    def executions(self, keys: set[str]) -> Counter[str]:
        return Counter(r["key"] for r in self.probes() if r.get("key") in keys)


_TASKS = ("bench_probe", "bench_hold", "bench_sleep", raw_worker.TASK)


def terminate(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM to the process's group, SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


async def _unused(payload: dict[str, Any], ctx: Any) -> None:  # pragma: no cover - the worker runs owlclaw's
    raise RuntimeError("only owlclaw's definitions run, in the worker process")
