"""The ``owlclaw-scheduler`` command.

Exit codes, for scripts: 0 done; 1 error; 2 usage or bad config or input;
3 no such task, run or cron; 4 the run ended failed or cancelled (``--wait``);
5 ``--wait`` timed out; 6 the engine could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from owlclaw.scheduler.cli import admin, commands
from owlclaw.scheduler.cli.session import APP_ENV, env_overrides, load_app, open_session
from owlclaw.scheduler.config import BACKEND_ENV
from owlclaw.scheduler.errors import (
    BackendNotFoundError,
    ConfigError,
    InvalidCronError,
    InvalidScheduleError,
    NotSupportedError,
    PayloadError,
    SchedulerConnectionError,
    SchedulerError,
    TaskDefinitionError,
    TaskNotFoundError,
    TaskNotRegisteredError,
    WaitTimeoutError,
)
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import cli_commands

__all__ = ["build_parser", "load_app", "main", "main_async"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TASK_FAILED = commands.EXIT_TASK_FAILED
EXIT_TIMEOUT = commands.EXIT_TIMEOUT
EXIT_UNREACHABLE = 6

_EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (SchedulerConnectionError, EXIT_UNREACHABLE),
    (WaitTimeoutError, EXIT_TIMEOUT),
    ((TaskNotFoundError), EXIT_NOT_FOUND),
    (TaskNotRegisteredError, EXIT_NOT_FOUND),
    (BackendNotFoundError, EXIT_NOT_FOUND),
    (ConfigError, EXIT_USAGE),
    (InvalidScheduleError, EXIT_USAGE),
    (InvalidCronError, EXIT_USAGE),
    (PayloadError, EXIT_USAGE),
    (TaskDefinitionError, EXIT_USAGE),
    (NotSupportedError, EXIT_USAGE),
]


def exit_code(exc: BaseException) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


def _common(nested: bool = False) -> argparse.ArgumentParser:
    """The options every command takes. ``nested`` (crons add, config show...)
    leaves unset options alone, so ``crons --json list`` keeps its --json."""
    common = argparse.ArgumentParser(add_help=False)
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if nested else {}
    common.add_argument(
        "--config", help="path of owlclaw.yaml (default: $OWLCLAW_CONFIG, else ./owlclaw.yaml)", **unset
    )
    common.add_argument(
        "--backend", help=f"backend name, overriding the config (sets {BACKEND_ENV})", **unset
    )
    common.add_argument(
        "--app",
        help=f"your scheduler as module:attribute, so its tasks are known (default: ${APP_ENV})",
        **unset,
    )
    common.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of a table", **unset
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG", **unset)
    return common


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _wait_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--wait", action="store_true", help=f"wait until {what} ends; exit 4 if it failed")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300; exit 5 after)")


def build_parser() -> argparse.ArgumentParser:
    common, nested = _common(), _common(nested=True)
    parser = argparse.ArgumentParser(
        prog="owlclaw-scheduler",
        description="Schedule agent work on pluggable backends.",
        epilog="exit codes: 0 ok, 1 error, 2 usage/config, 3 not found, 4 run failed, "
        "5 timeout, 6 unreachable",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    p = add("worker", "run a worker for APP until SIGTERM (drains, then exits)")
    p.add_argument(
        "worker_app", metavar="APP", help="your scheduler as module:attribute, e.g. myapp.tasks:scheduler"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve Prometheus metrics on http://127.0.0.1:N/metrics "
        "(address: $OWLCLAW_METRICS_ADDR; needs the 'metrics' extra)",
    )

    p = add("run", "run a task now")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--payload", help='JSON object, e.g. \'{"agent_id": "a1"}\'')
    _wait_args(p, "the run")

    p = add("schedule", "run a task once, later")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--in", dest="in_", metavar="DURATION", help="delay: 90s, 10m, 2h, 1d, 1h30m")
    p.add_argument("--at", metavar="TIME", help="ISO 8601 with a timezone, e.g. 2026-11-26T09:00:00Z")
    p.add_argument("--payload", help="JSON object")
    _wait_args(p, "the run")

    p = add("cancel", "cancel a scheduled, queued or running task")
    p.add_argument("id", metavar="ID")

    p = add("status", "show one task; --wait follows it to the end")
    p.add_argument("id", metavar="ID")
    _wait_args(p, "it")

    p = add("list", "list runs (newest first), or --scheduled tasks (soonest first)")
    p.add_argument("--task", help="only this task")
    p.add_argument("--scheduled", action="store_true", help="tasks waiting for their due time")
    p.add_argument("--state", action="append", choices=[s.value for s in TaskState], help="repeatable")
    p.add_argument("--limit", type=_positive_int, default=100, help="most rows to show (>= 1; default 100)")

    p = add("crons", "list, add or remove cron triggers")
    crons = p.add_subparsers(dest="crons_command", metavar="ACTION")
    c = crons.add_parser("list", help="list crons", parents=[nested])
    c.add_argument("--task", help="only this task")
    c = crons.add_parser("add", help="add a cron: crons add TASK 'EXPR'", parents=[nested])
    c.add_argument("task", metavar="TASK")
    c.add_argument("expression", metavar="EXPR", help="5 fields, or 6 with seconds first")
    c.add_argument("--payload", help="JSON object")
    c.add_argument("--timezone", default="UTC", help="IANA zone its wall times are read in (default UTC)")
    c = crons.add_parser("remove", help="remove a cron by id", parents=[nested])
    c.add_argument("id", metavar="ID")
    p.set_defaults(task=None)

    p = add("schedules", "list, show, preview, pause, resume, skip or backfill schedules")
    sch = p.add_subparsers(dest="schedules_command", required=True, metavar="ACTION")
    c = sch.add_parser("list", help="list schedules (crons included)", parents=[nested])
    c.add_argument("--task", help="only this task")
    for name, what in (
        ("show", "one schedule, with its policies"),
        ("preview", "the nominal times (UTC) that would fire between --start and --end"),
        ("pause", "stop firing; occurrences while paused are skipped"),
        ("resume", "fire again from now on"),
        ("skip", "skip the next --count occurrences"),
        ("backfill", "fire the past occurrences between --start and --end that have not fired"),
    ):
        c = sch.add_parser(name, help=what, parents=[nested])
        c.add_argument("id", metavar="ID", help="a schedule id, or a task with one schedule")
        if name in ("preview", "backfill"):
            c.add_argument("--start", required=True, help="ISO 8601 with a zone, e.g. 2026-03-29T00:00Z")
            c.add_argument("--end", required=True, help="ISO 8601 with a zone (exclusive)")
        if name == "pause":
            c.add_argument("--note", help="who paused and why")
        if name == "skip":
            c.add_argument("--count", type=_positive_int, default=1, help="occurrences to skip (default 1)")
    p.set_defaults(task=None)

    add("backends", "list the backend plugins found")

    p = add("config", "show the effective config (secrets masked) or check it")
    cfg = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cfg.add_parser("show", help="print the effective settings", parents=[nested])
    cfg.add_parser("check", help="validate; exit 2 with the fix when invalid", parents=[nested])

    p = add("doctor", "check config, engine, versions and workers; print each fix")
    p.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to reach the engine")

    p = add("demo", "a short real-time tour: delay, cron, cancel, retry, self-scheduling")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="give up after this many seconds (default 60; exit 5)"
    )

    # commands the installed plugins add (owlclaw_scheduler_cli_commands)
    for name, command in sorted(cli_commands().items()):
        if name in sub.choices:
            print(f"warning: ignoring a plugin's command {name!r}: a built-in has that name", file=sys.stderr)
            continue
        p = add(name, command.help)
        if command.configure is not None:
            command.configure(p)
        p.set_defaults(plugin_command=command)
    return parser


async def main_async(argv: Sequence[str], scheduler: Scheduler | None = None) -> int:
    """Run one task command on ``scheduler`` (or the configured one).

    For tests and embedding: the memory backend's state lives in one process,
    so a test passes its own scheduler and runs several commands on it.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "crons" and args.crons_command is None:
        args.crons_command = "list"
    if args.command not in commands.COMMANDS:
        raise SystemExit(f"main_async runs task commands only, not {args.command!r}")
    try:
        return await _dispatch(args, scheduler)
    except SchedulerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


async def _dispatch(args: argparse.Namespace, given: Scheduler | None) -> int:
    async with open_session(args.app, args.config, given) as session:
        try:
            code: int = await commands.COMMANDS[args.command](session, args)
        except TaskNotRegisteredError as exc:
            if not (args.app or os.environ.get(APP_ENV)):
                raise TaskNotRegisteredError(
                    f"{exc}; on the command line pass --app myapp.tasks:scheduler "
                    f"(or set {APP_ENV}) so the command knows your tasks"
                ) from exc
            raise
        except TaskNotFoundError as exc:
            if session.ephemeral:
                raise TaskNotFoundError(
                    f"{exc} (the {session.scheduler.backend_name} backend keeps tasks only in the "
                    "process that created them)"
                ) from exc
            raise
        return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo" and not args.verbose:
        # the demo prints its own table of runs; -v shows the per-attempt lines too
        logging.getLogger("owlclaw.scheduler.runs").setLevel(logging.WARNING)
    try:
        with env_overrides(args.config, args.backend):
            if args.command in commands.COMMANDS:
                if args.command == "crons" and args.crons_command is None:
                    args.crons_command = "list"
                return asyncio.run(_dispatch(args, None))
            return admin.run(args)
    except SchedulerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
