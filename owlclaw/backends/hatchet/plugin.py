"""Registers the ``hatchet`` backend, its demo environment and its CLI commands;
imports nothing heavy (no hatchet_sdk)."""

from __future__ import annotations

from collections.abc import Callable

from owlclaw.scheduler.hookspecs import BackendSpec, CliCommand, hookimpl


@hookimpl
def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
    register(
        BackendSpec(
            name="hatchet",
            scheduler="owlclaw.backends.hatchet.backend:HatchetScheduler",
            config="owlclaw.backends.hatchet.config:HatchetConfig",
            extra="hatchet",
            description="Hatchet engine (production, hatchet-lite, or a locally built embedded engine)",
            demo="owlclaw.backends.hatchet.cli:demo_environment",
        )
    )


@hookimpl
def owlclaw_scheduler_cli_commands(register: Callable[[CliCommand], None]) -> None:
    from owlclaw.backends.hatchet.cli import COMMANDS  # stdlib and owlclaw only, no hatchet_sdk

    for command in COMMANDS:
        register(command)
