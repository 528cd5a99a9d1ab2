"""A local Hatchet engine and worker process, for ``demo`` on a bare machine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import yaml

from owlclaw.scheduler.config import CONFIG_ENV, SchedulerConfig

__all__ = ["local_hatchet", "worker_process"]

TOKEN_ENV = "HATCHET_CLIENT_TOKEN"


@contextlib.contextmanager
def local_hatchet() -> Iterator[SchedulerConfig]:
    """Start the locally built Hatchet engine on a throw-away PostgreSQL."""
    from owlclaw.backends.hatchet.local.engine import LocalEngine
    from owlclaw.backends.hatchet.local.postgres import LocalPostgres

    print("starting a local Hatchet engine on a private PostgreSQL...", flush=True)
    with LocalPostgres() as pg, LocalEngine(pg.database_url("hatchet")) as engine:
        conn = engine.connection
        os.environ[TOKEN_ENV] = conn.token  # read by the worker process, never printed
        yield SchedulerConfig.from_mapping(
            {
                "backend": "hatchet",
                "hatchet": {
                    "mode": "lite",
                    "host_port": conn.host_port,
                    "server_url": conn.server_url,
                    "tls_strategy": "none",
                    "namespace": "owlclaw-demo",
                },
            },
            source="<local engine>",
        )


@contextlib.contextmanager
def worker_process(
    config: SchedulerConfig, app: str, output: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``owlclaw-scheduler worker APP`` in its own process, as Hatchet workers must.

    Its stdout and stderr go to ``output`` (default: this process's own).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "owlclaw.yaml"
        section = {"backend": config.backend, config.backend: config.section(config.backend)}
        path.write_text(yaml.safe_dump({"scheduler": section}))
        env = dict(os.environ, **{CONFIG_ENV: str(path)})
        worker = subprocess.Popen(
            [sys.executable, "-m", "owlclaw.scheduler.cli", "worker", app],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
        )
        try:
            yield worker
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
