"""pytest plugin (``pytest11`` entry point): fixtures for testing agents.

``owlclaw_scheduler``: a connected in-memory scheduler on a virtual clock
with its worker running. Declare tasks on it, or copy your app's with
``owlclaw_scheduler.add_tasks(app_scheduler.tasks.values())`` before
scheduling. Move time with ``await owlclaw_scheduler.advance(seconds)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from owlclaw.backends.memory import MemoryScheduler, VirtualClock

__all__ = ["owlclaw_scheduler"]


@pytest_asyncio.fixture
async def owlclaw_scheduler() -> AsyncIterator[MemoryScheduler]:
    scheduler = MemoryScheduler(clock=VirtualClock())
    async with scheduler:
        await scheduler.start_worker()
        yield scheduler
