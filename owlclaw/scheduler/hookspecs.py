"""Hook specifications for backend plugins (pluggy).

A backend package exposes a module in the ``owlclaw.scheduler.backends``
entry-point group that implements::

    from owlclaw.scheduler.hookspecs import BackendSpec, hookimpl

    @hookimpl
    def owlclaw_scheduler_register_backends(register):
        register(BackendSpec(name="mine", scheduler="my_pkg.backend:MyScheduler",
                             config="my_pkg.config:MyConfig"))

Importing that module must stay cheap: name classes as ``"module:attr"``
strings; they are imported only when the backend is chosen.

A plugin may also add commands to ``owlclaw-scheduler`` (implement
``owlclaw_scheduler_cli_commands``), and prepare ``owlclaw-scheduler demo`` for
its backend (``BackendSpec.demo``, e.g. start an engine and a worker process).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol

import pluggy

from owlclaw.scheduler.config import SchedulerConfig

__all__ = ["PROJECT", "BackendSpec", "CliCommand", "DemoEnvironment", "DemoSetup", "hookimpl", "hookspec"]

PROJECT = "owlclaw.scheduler"
ENTRY_POINT_GROUP = "owlclaw.scheduler.backends"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class BackendSpec:
    """How to build one backend, without importing it yet."""

    name: str
    scheduler: str  # "module:Class"; the class has ``from_config(config)``
    config: str  # "module:Model", a pydantic model of the backend's section
    extra: str | None = None  # pip extra that brings its dependencies
    description: str = ""
    #: "module:function", a ``DemoEnvironment`` that prepares ``owlclaw-scheduler demo``
    #: for this backend; None: the demo needs nothing but the scheduler
    demo: str | None = None


@dataclass(frozen=True)
class DemoSetup:
    """What a backend's demo environment gives the demo."""

    config: SchedulerConfig  # the configuration the demo's scheduler is built from
    #: where the backend's worker process writes, shown when the tour fails; None: not captured
    worker_output: IO[bytes] | None = None


class DemoEnvironment(Protocol):
    """Prepare the demo on ``config``'s backend (e.g. start an engine, a worker
    process) and undo it on exit. ``verbose``: let the worker print to the terminal."""

    def __call__(
        self, config: SchedulerConfig, *, verbose: bool
    ) -> contextlib.AbstractContextManager[DemoSetup]: ...


@dataclass(frozen=True)
class CliCommand:
    """A command a plugin adds to ``owlclaw-scheduler``.

    ``configure(parser)`` adds its arguments (the common ``--config``,
    ``--backend``, ``--app``, ``--json`` and ``-v`` are already there);
    ``run(args)`` runs it and returns the exit code (a ``SchedulerError`` it
    raises is printed and mapped to the CLI's exit codes).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] | None = None


@hookspec
def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Call ``register(BackendSpec(...))`` once per backend this plugin provides."""


@hookspec
def owlclaw_scheduler_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Call ``register(CliCommand(...))`` once per command this plugin adds.

    Called each time the CLI builds its parser: import heavy modules inside
    ``run``, not here.
    """
