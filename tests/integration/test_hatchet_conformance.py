"""The conformance suite, unchanged, against a real Hatchet engine.

The worker runs the conformance app in a subprocess (``conformance_worker``);
the test process only schedules and inspects, as an application would.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing import SchedulerConformance
from tests.integration.conftest import HatchetEngine

pytestmark = pytest.mark.integration


class TestHatchet(SchedulerConformance):
    # a real clock: VirtualTimeConformance is not inherited, so its tests are not collected

    # the engine clears a run's started_at when it retries it (docs/hatchet.md):
    # started_at is the latest attempt's start here, the first attempt's on memory
    started_at_is_first_attempt = False

    @pytest.fixture
    async def scheduler(
        self, hatchet_engine: Any, conformance_worker: Any, connect_scheduler: Any
    ) -> AsyncIterator[Scheduler]:
        # schedules on (the state database): their tests without a virtual clock run
        async with connect_scheduler(
            hatchet_engine, state_database_url=hatchet_engine.state_database_url
        ) as scheduler:
            yield scheduler

    @pytest.fixture
    async def single_slot_scheduler(
        self, hatchet_engine: Any, spawn_worker: Any, connect_scheduler: Any
    ) -> AsyncIterator[Scheduler]:
        # a namespace of its own (not the session's plus a suffix, which would
        # share its listings), so the shared worker takes none of its runs
        engine = _SingleSlot(**dataclasses.asdict(hatchet_engine))
        engine.namespace = f"owlclaw-one-slot-{uuid.uuid4().hex[:10]}"
        spawn_worker(engine, name="one-slot")
        async with connect_scheduler(engine) as scheduler:
            yield scheduler


@dataclasses.dataclass
class _SingleSlot(HatchetEngine):
    """The session's engine, configured for a worker with one slot."""

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return super().settings(**{"slots": 1, **overrides})
