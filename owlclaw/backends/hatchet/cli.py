"""What the Hatchet backend adds to ``owlclaw-scheduler`` (through its plugin).

* ``demo`` on Hatchet (``demo_environment``): the demo's workers run in a process
  of their own, and with no Hatchet settings and no token the demo starts the
  locally built engine on a throw-away PostgreSQL.
* ``owlclaw-scheduler hatchet-engine``: that local engine until Ctrl-C, as
  ``python -m owlclaw.backends.hatchet.local`` does.

Nothing here imports hatchet_sdk, and the engine modules are imported only when used.
"""

from __future__ import annotations

import argparse
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
from owlclaw.scheduler.hookspecs import CliCommand, DemoSetup

__all__ = ["COMMANDS", "demo_environment", "local_hatchet", "worker_process"]

TOKEN_ENV = "HATCHET_CLIENT_TOKEN"
DEMO_APP = "owlclaw.scheduler.demo_app:scheduler"


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
                    "state_database_url": pg.database_url("owlclaw"),  # schedules' state
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


@contextlib.contextmanager
def demo_environment(config: SchedulerConfig, *, verbose: bool) -> Iterator[DemoSetup]:
    """A worker process for the demo's tasks, on the local engine when nothing
    names another; its output is kept for the failure report unless ``verbose``."""
    with contextlib.ExitStack() as stack:
        if not config.section("hatchet") and not os.environ.get(TOKEN_ENV):
            config = stack.enter_context(local_hatchet())
        output = None if verbose else stack.enter_context(tempfile.TemporaryFile())
        stack.enter_context(worker_process(config, DEMO_APP, output))
        yield DemoSetup(config, output)


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a temporary one")
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--api-port", type=int)
    parser.add_argument("--workdir", help="keep config and engine.log here")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--log-level", default="warn")


def _engine(args: argparse.Namespace) -> int:
    from owlclaw.backends.hatchet.local.__main__ import main

    argv = ["--startup-timeout", str(args.startup_timeout), "--log-level", args.log_level]
    for option in ("database_url", "grpc_port", "api_port", "workdir"):
        value = getattr(args, option)
        if value is not None:
            argv += ["--" + option.replace("_", "-"), str(value)]
    return main(argv)


COMMANDS = (
    CliCommand(
        name="hatchet-engine",
        help="run the locally built Hatchet engine (and a temporary PostgreSQL) until Ctrl-C; "
        "prints the HATCHET_CLIENT_* exports",
        run=_engine,
        configure=_engine_arguments,
    ),
)
