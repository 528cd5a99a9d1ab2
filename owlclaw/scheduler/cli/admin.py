"""The commands that do not act on tasks: worker, backends, config, doctor, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from typing import Any

from owlclaw.scheduler.cli.commands import EXIT_TIMEOUT
from owlclaw.scheduler.cli.output import emit
from owlclaw.scheduler.cli.session import build_scheduler, load_app
from owlclaw.scheduler.config import SchedulerConfig, validate_section
from owlclaw.scheduler.doctor import run_checks
from owlclaw.scheduler.errors import BackendNotFoundError
from owlclaw.scheduler.hookspecs import CliCommand
from owlclaw.scheduler.registry import available_backends, create_scheduler, demo_environment, load_backend

__all__ = ["run"]

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)")


def _backends(args: argparse.Namespace) -> int:
    rows = []
    for name, spec in sorted(available_backends().items()):
        try:
            load_backend(name)
            status = "ready"
        except BackendNotFoundError as exc:
            status = f"not installed: {exc}"
        rows.append({"name": name, "status": status, "description": spec.description})
    emit(rows, as_json=args.json, columns=("name", "status", "description"))
    return 0


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1**********\2", value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    return value


def _effective(config: SchedulerConfig) -> dict[str, Any]:
    _, model = load_backend(config.backend)
    settings = validate_section(model, config, config.backend)
    # mode="json" prints a SecretStr as '**********'
    return {
        "source": config.source,
        "backend": config.backend,
        config.backend: _mask(settings.model_dump(mode="json")),
    }


def _config(args: argparse.Namespace) -> int:
    config = SchedulerConfig.load(args.config)
    effective = _effective(config)
    if args.config_command == "show":
        if args.json:
            emit(effective, as_json=True)
        else:
            print(f"# from {effective.pop('source')}")
            import yaml

            print(yaml.safe_dump({"scheduler": effective}, sort_keys=False).rstrip())
        return 0
    emit({"config": "ok", "source": config.source, "backend": config.backend}, as_json=args.json)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    scheduler = build_scheduler(args.app, args.config) if args.app else None
    findings = asyncio.run(run_checks(args.config, scheduler, timeout=args.connect_timeout))
    rows = [{"level": f.level, "check": f.check, "detail": f.detail, "fix": f.fix} for f in findings]
    if args.json:
        emit(rows, as_json=True)
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for f in findings:
            print(f"[{marks[f.level]}] {f.check}: {f.detail}")
            if f.fix:
                print(f"       fix: {f.fix}")
    return 1 if any(f.level == "fail" for f in findings) else 0


def _worker(args: argparse.Namespace) -> int:
    scheduler = load_app(args.worker_app)
    if getattr(args, "metrics_port", None) is not None:
        from owlclaw.scheduler.observability import serve_metrics

        serve_metrics(args.metrics_port, scheduler)
    scheduler.run_worker()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from owlclaw.scheduler.demo import declare_demo_tasks, run_demo

    config = SchedulerConfig.load(args.config)
    with contextlib.ExitStack() as stack:
        worker_output = None
        environment = demo_environment(config.backend)  # declared by the backend's plugin
        if environment is not None:
            setup = stack.enter_context(environment(config, verbose=args.verbose))
            config, worker_output = setup.config, setup.worker_output
        scheduler = declare_demo_tasks(create_scheduler(config))
        missing = asyncio.run(run_demo(scheduler, timeout=args.timeout))
        if missing and worker_output is not None and worker_output.tell():
            worker_output.seek(0)
            tail = worker_output.read().decode(errors="replace").splitlines()[-40:]
            print("the worker's last output:", *tail, sep="\n", file=sys.stderr)
    return EXIT_TIMEOUT if missing else 0


_ADMIN = {"worker": _worker, "backends": _backends, "config": _config, "doctor": _doctor, "demo": _demo}


def run(args: argparse.Namespace) -> int:
    """Run an admin command, or a command a plugin added (``args.plugin_command``)."""
    plugin_command: CliCommand | None = getattr(args, "plugin_command", None)
    if plugin_command is not None:
        return plugin_command.run(args)
    code: int = _ADMIN[args.command](args)
    return code
