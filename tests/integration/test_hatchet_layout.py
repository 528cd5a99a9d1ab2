"""The worker layout on a real engine: an app with ordinary and durable tasks
runs two SDK workers in one process, the ordinary one without durable slots
(the fast path, docs/hatchet.md "Worker layout"), and a signal drains both."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.layout import DURABLE_SUFFIX
from owlclaw.backends.hatchet.naming import LINK
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import poll_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Iterator[Any]:
    """The session's engine, in a namespace of this module's own."""
    yield dataclasses.replace(hatchet_engine, namespace=f"owlclaw-layout-{uuid.uuid4().hex[:10]}")


async def _workers(scheduler: Any, name: str) -> dict[str, Any]:
    """The engine's ACTIVE workers named ``name`` or ``name-durable`` (after the
    SDK's namespace prefix), in full (``aio_get``), by those names."""
    sdk = scheduler._connection.require()
    rows = (await sdk.workers.aio_list()).rows or []
    found = {}
    for row in rows:
        for wanted in (name, name + DURABLE_SUFFIX):
            if row.name.endswith(wanted) and row.status == "ACTIVE":
                found[wanted] = await sdk.workers.aio_get(row.metadata.id)
    return found


SLOTS = HatchetConfig.model_fields["slots"].default  # the worker's, left at the default


def _slot_types(worker: Any) -> set[str]:
    return {kind for kind, config in (worker.slot_config or {}).items() if (config.limit or 0) > 0}


async def test_ordinary_tasks_run_on_a_worker_without_durable_slots(
    engine: Any, spawn_worker: Any, connect_scheduler: Any
) -> None:
    name = f"lay{uuid.uuid4().hex[:6]}"
    spawn_worker(engine, name=name)
    async with connect_scheduler(engine) as scheduler:
        every = set(scheduler.tasks)
        durable_tasks = {name for name, options in scheduler.tasks.items() if options.durable}
        assert durable_tasks and durable_tasks < every, "the conformance app has both kinds of task"
        workers = await poll_until(
            lambda: _workers(scheduler, name),
            lambda found: len(found) == 2,
            timeout=60,
            interval=0.5,
            what=f"workers {name} and {name}{DURABLE_SUFFIX} ACTIVE (found: name -> worker)",
        )
        ordinary, durable = workers[name], workers[name + DURABLE_SUFFIX]
        assert _slot_types(ordinary) == {"default"}, ordinary.slot_config
        # the engine gives every worker a default pool too (a trigger on its row, 100 slots):
        # idle here, as this worker serves no ordinary task
        assert "durable" in _slot_types(durable), durable.slot_config
        assert durable.slot_config["durable"].limit == SLOTS, durable.slot_config
        served = {a.split(":", 1)[0].split("_", 1)[-1] for a in ordinary.actions or []}
        served_durable = {a.split(":", 1)[0].split("_", 1)[-1] for a in durable.actions or []}
        # with a state database (spawn_worker passes the engine's) the ordinary worker
        # also serves owlclaw's schedule links, and the durable one never does
        internal = {LINK} if engine.state_database_url is not None else set()
        assert served == (every - durable_tasks) | internal, ordinary.actions
        assert served_durable == durable_tasks, durable.actions
        # both kinds run, each on its own worker
        echo = await scheduler.run_task("conf_echo", {"value": 1})
        nap = await scheduler.run_task("conf_durable", {"seconds": 1})
        for task_id in (echo, nap):
            info = await scheduler.wait_for_task(task_id, timeout=60)
            assert info.state is TaskState.SUCCEEDED, (task_id, info.error)


async def test_sigterm_drains_both_workers_and_a_new_process_resumes_the_sleep(
    engine: Any, spawn_worker: Any, connect_scheduler: Any
) -> None:
    first = spawn_worker(engine)
    async with connect_scheduler(engine) as scheduler:
        sleeper = await scheduler.run_task("conf_durable", {"seconds": 6})
        slow = await scheduler.run_task("conf_slow", {"seconds": 4})
        for task_id in (sleeper, slow):
            await poll_until(
                lambda task_id=task_id: scheduler.get_task_status(task_id),
                lambda info: info.state is TaskState.RUNNING,
                timeout=60,
                interval=0.1,
                what=f"run {task_id} to be running",
            )
        first.signal(signal.SIGTERM)
        # the durable worker got the signal too: the process leaves once the ordinary run is done
        code = await asyncio.to_thread(first.wait, 60)
        assert code == 0, first.log_tail()
        info = await scheduler.get_task_status(slow)
        assert info.state is TaskState.SUCCEEDED, (info, first.log_tail())
        spawn_worker(engine)
        woke = await scheduler.wait_for_task(sleeper, timeout=120)
        assert woke.state is TaskState.SUCCEEDED, (woke.error, first.log_tail())
        assert woke.result == {"woke": True, "task_id": sleeper}
