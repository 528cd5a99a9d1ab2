"""Batched triggers on a real engine: concurrent ``run_task`` calls share
bulk requests, each caller gets its own run (or its own error), the queue is
bounded, ``disconnect()`` flushes, and ``batch_triggers: false`` turns it off."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from owlclaw.scheduler.errors import SchedulerError
from owlclaw.scheduler.models import TaskState

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Iterator[Any]:
    yield dataclasses.replace(hatchet_engine, namespace=f"owlclaw-batch-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def worker(engine: Any, spawn_worker: Any) -> Any:
    return spawn_worker(engine)


async def _results(scheduler: Any, ids: list[str]) -> list[Any]:
    infos = await asyncio.gather(*(scheduler.wait_for_task(i, timeout=120) for i in ids))
    bad = [(i.id, i.state, i.error) for i in infos if i.state is not TaskState.SUCCEEDED]
    assert not bad, f"runs that did not succeed: {bad[:5]}"
    return [i.result for i in infos]


async def test_concurrent_calls_share_requests_and_keep_their_own_runs(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        batcher = scheduler._connection.batcher
        assert batcher is not None
        before = batcher.requests
        ids = await asyncio.gather(*(scheduler.run_task("conf_echo", {"value": n}) for n in range(60)))
        sent = batcher.requests - before
        assert len(set(ids)) == 60
        assert sent < 60, f"60 concurrent calls took {sent} bulk requests"
        assert await _results(scheduler, ids) == list(range(60))


async def test_a_run_the_engine_refuses_fails_only_its_own_call(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as scheduler:
        calls = [scheduler.run_task("conf_echo", {"value": n}) for n in range(20)]
        # valid JSON that PostgreSQL's jsonb refuses: the engine rejects the run
        calls.insert(7, scheduler.run_task("conf_echo", {"value": "nul \u0000 byte"}))
        outcome = await asyncio.gather(*calls, return_exceptions=True)
        errors = [o for o in outcome if isinstance(o, BaseException)]
        assert len(errors) == 1 and outcome[7] is errors[0], f"outcomes: {outcome}"
        assert isinstance(errors[0], SchedulerError), repr(errors[0])
        assert "conf_echo" in str(errors[0])
        ids = [o for o in outcome if isinstance(o, str)]
        assert await _results(scheduler, ids) == list(range(20))


async def test_a_small_queue_holds_callers_back_and_loses_none(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine, trigger_queue_size=2) as scheduler:
        batcher = scheduler._connection.batcher
        before = batcher.requests
        ids = await asyncio.gather(*(scheduler.run_task("conf_echo", {"value": n}) for n in range(12)))
        assert batcher.requests - before >= 6, "at most 2 calls may share a request"
        assert await _results(scheduler, ids) == list(range(12))


async def test_disconnect_sends_what_is_queued(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine) as scheduler:
        calls = [asyncio.create_task(scheduler.run_task("conf_echo", {"value": n})) for n in range(15)]
        await asyncio.sleep(0)  # one turn of the loop: every call is queued, none answered yet
        await scheduler.disconnect()
        ids = await asyncio.gather(*calls)
        await scheduler.connect()
        assert await _results(scheduler, list(ids)) == list(range(15))


async def test_batching_can_be_turned_off(engine: Any, worker: Any, connect_scheduler: Any) -> None:
    async with connect_scheduler(engine, batch_triggers=False) as scheduler:
        assert scheduler._connection.batcher is None
        ids = await asyncio.gather(*(scheduler.run_task("conf_echo", {"value": n}) for n in range(5)))
        assert await _results(scheduler, list(ids)) == list(range(5))
