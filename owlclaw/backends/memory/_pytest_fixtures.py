"""The async fixtures of :mod:`owlclaw.backends.memory.pytest_plugin`; imported
only when pytest-asyncio is active, since importing this imports it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from owlclaw.backends.memory.backend import MemoryScheduler
from owlclaw.scheduler.clock import VirtualClock

__all__ = ["owlclaw_scheduler"]


@pytest_asyncio.fixture
async def owlclaw_scheduler() -> AsyncIterator[MemoryScheduler]:
    scheduler = MemoryScheduler(clock=VirtualClock())
    async with scheduler:
        await scheduler.start_worker()
        yield scheduler
