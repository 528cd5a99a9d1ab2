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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pluggy

__all__ = ["PROJECT", "BackendSpec", "hookimpl", "hookspec"]

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


@hookspec
def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Call ``register(BackendSpec(...))`` once per backend this plugin provides."""
