"""The ``owlclaw-scheduler`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from owlclaw.scheduler.config import BACKEND_ENV, SchedulerConfig
from owlclaw.scheduler.errors import BackendNotFoundError, SchedulerError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import available_backends, create_scheduler, load_backend

__all__ = ["main"]

TOKEN_ENV = "HATCHET_CLIENT_TOKEN"
EXIT_ERROR = 1
EXIT_USAGE = 2


def _cmd_backends(args: argparse.Namespace) -> int:
    for name, spec in sorted(available_backends().items()):
        try:
            load_backend(name)
            status = "ready"
        except BackendNotFoundError as exc:
            status = f"not installed: {exc}"
        print(f"{name:<10} {status:<8} {spec.description}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from owlclaw.scheduler.demo import declare_demo_tasks, run_demo

    if args.backend:
        os.environ[BACKEND_ENV] = args.backend
    config = SchedulerConfig.load(args.config)
    with contextlib.ExitStack() as stack:
        if config.backend == "hatchet" and not config.section("hatchet") and not os.environ.get(TOKEN_ENV):
            config = stack.enter_context(_local_hatchet())
        if config.backend == "hatchet":
            stack.enter_context(_worker_process(config))
        scheduler = declare_demo_tasks(create_scheduler(config))
        asyncio.run(run_demo(scheduler, seconds=args.seconds))
    return 0


@contextlib.contextmanager
def _local_hatchet() -> Iterator[SchedulerConfig]:
    """Start the locally built Hatchet engine on a throw-away PostgreSQL."""
    from owlclaw.backends.hatchet.engine import LocalEngine, LocalPostgres

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
                    "namespace": "owlclaw_demo",
                },
            },
            source="<local engine>",
        )


@contextlib.contextmanager
def _worker_process(config: SchedulerConfig) -> Iterator[None]:
    """Run the demo's worker in its own process, as Hatchet workers must."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "owlclaw.yaml"
        section = {"backend": config.backend, config.backend: config.section(config.backend)}
        path.write_text(yaml.safe_dump({"scheduler": section}))
        env = dict(os.environ, OWLCLAW_CONFIG=str(path))
        cmd = [
            sys.executable,
            "-m",
            "owlclaw.scheduler.cli",
            "worker",
            "owlclaw.scheduler.demo_app:scheduler",
        ]
        worker = subprocess.Popen(cmd, env=env)
        try:
            yield
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def load_app(ref: str) -> Scheduler:
    """Import ``module:attribute`` and return the scheduler it names."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise SchedulerError(f"APP must look like module:attribute (e.g. myapp.tasks:scheduler), got {ref!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchedulerError(f"cannot import {module_name!r} for APP {ref!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Scheduler):
        raise SchedulerError(f"{ref!r} is {type(app).__name__}, not a scheduler from create_scheduler()")
    return app


def _cmd_worker(args: argparse.Namespace) -> int:
    load_app(args.app).run_worker()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="owlclaw-scheduler", description="Schedule agent work on pluggable backends."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list the backend plugins found")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser("demo", help="a short real-time tour: delay, cron, cancel, retry, self-scheduling")
    p.add_argument("--backend", help=f"backend (default: from config, else memory; sets {BACKEND_ENV})")
    p.add_argument("--config", help="path of owlclaw.yaml (default: $OWLCLAW_CONFIG or ./owlclaw.yaml)")
    p.add_argument(
        "--seconds", type=float, help="how long to run (default 6; 15 on hatchet, whose worker takes a while)"
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("worker", help="run a worker for APP until SIGTERM (drains, then exits)")
    p.add_argument(
        "app", metavar="APP", help="your scheduler as module:attribute, e.g. myapp.tasks:scheduler"
    )
    p.set_defaults(func=_cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except SchedulerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
