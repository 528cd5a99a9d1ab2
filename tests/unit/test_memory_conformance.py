from collections.abc import AsyncIterator

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.scheduler.testing import SchedulerConformance, VirtualTimeConformance, register_conformance_tasks


class TestMemoryVirtualClock(VirtualTimeConformance, SchedulerConformance):
    start_tolerance = 0.001
    retry_slack = 0.0  # retries wait exactly their backoff on the virtual clock

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[MemoryScheduler]:
        s = MemoryScheduler(clock=VirtualClock())
        register_conformance_tasks(s)
        async with s:
            await s.start_worker()
            yield s

    @pytest.fixture
    async def single_slot_scheduler(self) -> AsyncIterator[MemoryScheduler]:
        # the real clock: the priority test orders runs by their start times
        s = MemoryScheduler(MemoryConfig(slots=1))
        register_conformance_tasks(s)
        async with s:
            await s.start_worker()
            yield s
