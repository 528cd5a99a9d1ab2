"""Which scheduler a CLI command talks to, and for how long."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from owlclaw.scheduler.config import BACKEND_ENV, CONFIG_ENV, SchedulerConfig
from owlclaw.scheduler.errors import SchedulerError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import create_scheduler

__all__ = ["APP_ENV", "Session", "env_overrides", "load_app", "open_session"]

APP_ENV = "OWLCLAW_APP"


@dataclass
class Session:
    scheduler: Scheduler
    #: the CLI made this scheduler and runs its tasks in this process, so
    #: whatever is still pending when the command returns is gone with it
    ephemeral: bool


def load_app(ref: str) -> Scheduler:
    """Import ``module:attribute`` and return the scheduler it names."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise SchedulerError(f"APP must look like module:attribute (e.g. myapp.tasks:scheduler), got {ref!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchedulerError(f"cannot import {module_name!r} for APP {ref!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Scheduler):
        raise SchedulerError(f"{ref!r} is {type(app).__name__}, not a scheduler from create_scheduler()")
    return app


@contextlib.contextmanager
def env_overrides(config: str | None, backend: str | None) -> Iterator[None]:
    """``--config`` and ``--backend`` as the environment an app reads at import."""
    changes = {CONFIG_ENV: config, BACKEND_ENV: backend}
    saved = {k: os.environ.get(k) for k, v in changes.items() if v}
    for key, value in changes.items():
        if value:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def build_scheduler(app: str | None, config: str | None) -> Scheduler:
    """The app's scheduler (its tasks registered), else one from the config."""
    app = app or os.environ.get(APP_ENV) or None
    if app:
        return load_app(app)
    return create_scheduler(SchedulerConfig.load(config))


@contextlib.asynccontextmanager
async def open_session(
    app: str | None, config: str | None, given: Scheduler | None = None
) -> AsyncIterator[Session]:
    """Connect, and run an in-process worker where the backend has one.

    A ``given`` scheduler (tests, embedding) is used as it is: its owner
    connects it and runs its worker.
    """
    if given is not None:
        yield Session(given, ephemeral=False)
        return
    scheduler = build_scheduler(app, config)
    # without it, workers are processes of their own (``owlclaw-scheduler worker APP``)
    in_process = scheduler.capabilities.start_worker
    await scheduler.connect()
    try:
        if in_process:
            await scheduler.start_worker()
        yield Session(scheduler, ephemeral=in_process)
    finally:
        if in_process:
            await scheduler.stop_worker()
        await scheduler.disconnect()
