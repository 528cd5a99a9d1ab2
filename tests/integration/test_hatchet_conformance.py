"""The conformance suite, unchanged, against a real Hatchet engine.

The worker runs the conformance app in a subprocess (``conformance_worker``);
the test process only schedules and inspects, as an application would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing import SchedulerConformance

pytestmark = pytest.mark.integration


class TestHatchet(SchedulerConformance):
    supports_virtual_time = False

    @pytest.fixture
    async def scheduler(
        self, hatchet_engine: Any, conformance_worker: Any, connect_scheduler: Any
    ) -> AsyncIterator[Scheduler]:
        async with connect_scheduler(hatchet_engine) as scheduler:
            yield scheduler
