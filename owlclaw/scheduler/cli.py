"""The ``owlclaw-scheduler`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from owlclaw.scheduler.config import BACKEND_ENV
from owlclaw.scheduler.errors import BackendNotFoundError, SchedulerError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import available_backends, create_scheduler, load_backend

__all__ = ["main"]

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
    scheduler = declare_demo_tasks(create_scheduler(args.config))
    asyncio.run(run_demo(scheduler, seconds=args.seconds))
    return 0


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
    p.add_argument("--seconds", type=float, default=6.0, help="how long to run (default 6)")
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
