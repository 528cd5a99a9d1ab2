"""SIGTERM on a Hatchet worker: runs in flight get ``shutdown_grace_seconds``,
then the worker exits anyway and the engine hands them to another worker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_harness import FaultWorker, Target, read_events, wait_for_event

from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import poll_until

pytestmark = pytest.mark.integration

GRACE = 3.0
# the engine notices a gone worker by its heartbeat timeout (~30 s, docs/hatchet.md)
REASSIGN_BOUND = 120.0


@pytest.fixture
def shared(hatchet_engine: Any) -> Target:
    return Target.of(hatchet_engine)


@pytest.fixture
def workers() -> Iterator[list[FaultWorker]]:
    started: list[FaultWorker] = []
    yield started
    for worker in started:
        worker.stop()


async def test_sigterm_stops_a_worker_whose_run_outlasts_the_grace(
    shared: Target, tmp_path: Path, workers: list[FaultWorker]
) -> None:
    first = FaultWorker(shared, tmp_path, shutdown_grace_seconds=GRACE)
    workers.append(first)
    await first.started()
    async with shared.scheduler() as client:
        task_id = await client.run_task("fault_work", {"seconds": 3600})
        await wait_for_event(tmp_path, "start", task_id, timeout=60)
        sent = time.monotonic()
        first.signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, GRACE + 60)
        took = time.monotonic() - sent
        assert code == 1, (code, first.log_tail())
        assert GRACE <= took < GRACE + 60, (took, first.log_tail())
        log = first.log_path.read_text(errors="replace")
        assert "after the shutdown signal (scheduler.hatchet.shutdown_grace_seconds)" in log, log[-3000:]
        # nothing is lost: the engine hands the run to the next worker
        second = FaultWorker(shared, tmp_path)
        workers.append(second)
        await second.started()
        starts = await poll_until(
            lambda: [e for e in read_events(tmp_path) if e.kind == "start" and e.task_id == task_id],
            lambda found: len(found) >= 2,
            timeout=REASSIGN_BOUND,
            interval=0.5,
            what=f"run {task_id} started again on the second worker (start events)",
        )
        assert [e.pid for e in starts] == [first.pid, second.pid], starts
        assert await client.cancel_task(task_id) is True
        info = await client.get_task_status(task_id)
        assert info.state is TaskState.CANCELLED, info
