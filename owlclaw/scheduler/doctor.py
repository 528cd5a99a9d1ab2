"""``owlclaw-scheduler doctor``: check config, engine, versions and workers.

Each check yields a :class:`Finding` that says what is wrong and how to fix
it. A backend adds its own checks by declaring ``Capabilities(diagnose=True)``
and an ``async def diagnose(self) -> list[Finding]`` method, called once connected.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from owlclaw.scheduler.config import SchedulerConfig, validate_section
from owlclaw.scheduler.errors import BackendNotFoundError, ConfigError, SchedulerError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import load_backend

__all__ = ["Diagnosable", "Finding", "run_checks"]

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""


class Diagnosable(Protocol):
    """A scheduler whose ``capabilities.diagnose`` is True."""

    async def diagnose(self) -> list[Finding]: ...


async def run_checks(
    config_path: str | None, scheduler: Scheduler | None = None, timeout: float = 15.0
) -> list[Finding]:
    """Every finding, stopping at the first check the later ones depend on."""
    found: list[Finding] = []
    try:
        config = SchedulerConfig.load(config_path)
    except ConfigError as exc:
        return [
            Finding("config", "fail", str(exc), "fix the file, then run `owlclaw-scheduler config check`")
        ]
    found.append(Finding("config", "ok", f"{config.source}: backend {config.backend!r}"))
    try:
        scheduler_cls, model = load_backend(config.backend)
    except BackendNotFoundError as exc:
        found.append(
            Finding("backend", "fail", str(exc), "install the backend's extra or fix scheduler.backend")
        )
        return found
    try:
        validate_section(model, config, config.backend)
    except ConfigError as exc:
        found.append(Finding("settings", "fail", str(exc), "fix the setting named above"))
        return found
    found.append(Finding("backend", "ok", f"{config.backend} ({scheduler_cls.__module__})"))
    if scheduler is None:
        from owlclaw.scheduler.registry import create_scheduler

        scheduler = create_scheduler(config)
    try:
        await asyncio.wait_for(scheduler.connect(), timeout)
    except (SchedulerError, TimeoutError) as exc:
        detail = str(exc) or f"no answer within {timeout:g}s"
        found.append(Finding("connect", "fail", detail, "check the address, TLS and token settings above"))
        return found
    try:
        found.append(Finding("connect", "ok", f"connected ({scheduler.backend_name})"))
        if scheduler.capabilities.diagnose:
            found.extend(await cast(Diagnosable, scheduler).diagnose())
    finally:
        await scheduler.disconnect()
    return found
