"""The fault conformance suite on the real engine: an address nothing listens
on, and a test-local engine stopped under a connected scheduler. The session's
shared engine is never touched."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing import register_conformance_tasks
from owlclaw.scheduler.testing.conformance import SchedulerFaultConformance

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scheduler(token: str, host_port: str, server_url: str) -> HatchetScheduler:
    config = HatchetConfig.model_validate(
        {
            "mode": "lite",
            "api_token": token,
            "host_port": host_port,
            "server_url": server_url,
            "namespace": f"owlclaw-fault-{uuid.uuid4().hex[:8]}",
            "connect_timeout_seconds": 10,
        }
    )
    scheduler = HatchetScheduler(config)
    register_conformance_tasks(scheduler)
    return scheduler


class TestHatchetFaultConformance(SchedulerFaultConformance):
    @pytest.fixture
    async def unreachable(self, hatchet_engine: Any) -> AsyncIterator[Scheduler]:
        port = _closed_port()
        yield _scheduler(hatchet_engine.token, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}")

    @pytest.fixture
    async def engine_loss(
        self, local_engine_binaries: None
    ) -> AsyncIterator[tuple[Scheduler, Callable[[], Awaitable[None]]]]:
        from owlclaw.backends.hatchet.local.engine import LocalEngine
        from owlclaw.backends.hatchet.local.postgres import LocalPostgres

        with LocalPostgres() as pg:
            engine = LocalEngine(pg.database_url("hatchet"), startup_timeout=180)
            conn = await asyncio.to_thread(engine.start)
            try:
                scheduler = _scheduler(conn.token, conn.host_port, conn.server_url)
                await scheduler.connect()

                async def lose_engine() -> None:
                    await asyncio.to_thread(engine.stop)

                yield scheduler, lose_engine
                await scheduler.disconnect()
            finally:
                await asyncio.to_thread(engine.stop)
