"""Registers the ``memory`` backend; imports nothing heavy."""

from __future__ import annotations

from collections.abc import Callable

from owlclaw.scheduler.hookspecs import BackendSpec, hookimpl


@hookimpl
def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(
        BackendSpec(
            name="memory",
            scheduler="owlclaw.backends.memory.backend:MemoryScheduler",
            config="owlclaw.backends.memory.config:MemoryConfig",
            description="in this process; for tests (virtual clock) and demos",
        )
    )
