"""Registers the ``hatchet`` backend; imports nothing heavy (no hatchet_sdk)."""

from __future__ import annotations

from collections.abc import Callable

from owlclaw.scheduler.hookspecs import BackendSpec, hookimpl


@hookimpl
def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(
        BackendSpec(
            name="hatchet",
            scheduler="owlclaw.backends.hatchet.backend:HatchetScheduler",
            config="owlclaw.backends.hatchet.config:HatchetConfig",
            extra="hatchet",
            description="Hatchet engine (production, hatchet-lite, or a locally built embedded engine)",
        )
    )
