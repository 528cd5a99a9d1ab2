from collections.abc import AsyncIterator

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.testing import SchedulerConformance, register_conformance_tasks


class TestMemoryVirtualClock(SchedulerConformance):
    supports_virtual_time = True
    start_tolerance = 0.001

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[MemoryScheduler]:
        s = MemoryScheduler(clock=VirtualClock())
        register_conformance_tasks(s)
        async with s:
            await s.start_worker()
            yield s
