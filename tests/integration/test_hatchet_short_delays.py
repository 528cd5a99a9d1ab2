"""Short delays on the real engine: a schedule due in under ``HOLD_SECONDS``
is queued at once and held by its worker until due (``hold_short_delays``).

What a user relies on: it starts on time (the engine's ticker alone would
start it up to 5 s late), reads SCHEDULED until due from any process, is
listed by ``list_scheduled_tasks`` and not by ``list_tasks`` until then, can
be cancelled without its task running, and survives its worker's death.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until

pytestmark = pytest.mark.integration

# How late a held run may start here: a bound on stalls, not the precision
# (that is `python -m benchmarks timers`: p50 about 1 ms). A fresh engine is
# slow to hand out its first runs (docs/hatchet.md): 4.1 s seen here on a
# loaded machine.
STALL = 60.0


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Iterator[Any]:
    yield dataclasses.replace(hatchet_engine, namespace=f"owlclaw-hold-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def worker(engine: Any, spawn_worker: Any) -> Any:
    return spawn_worker(engine)


async def _final(scheduler: Any, task_id: str, timeout: float = 60.0) -> Any:
    return await poll_until(
        lambda: scheduler.get_task_status(task_id),
        lambda info: info.state.is_final,
        timeout=timeout,
        interval=0.2,
        what=f"task {task_id} to end",
    )


async def test_a_short_delay_reads_scheduled_then_starts_on_time(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as s, connect_scheduler(engine) as other:
        for delay in (1.0, 3.0):
            task_id = await s.schedule_task("conf_echo", {"value": delay}, delay_seconds=delay)
            mine, theirs = await s.get_task_status(task_id), await other.get_task_status(task_id)
            assert (mine.state, theirs.state) == (TaskState.SCHEDULED, TaskState.SCHEDULED), (mine, theirs)
            assert theirs.scheduled_at == mine.scheduled_at and theirs.payload == {"value": delay}
            pending = await poll_until(
                lambda: other.list_scheduled_tasks("conf_echo"),
                lambda rows, task_id=task_id: any(r.id == task_id for r in rows),
                timeout=10,
                interval=0.1,
                what="the held run in another process's list_scheduled_tasks",
            )
            assert [r.state for r in pending if r.id == task_id] == [TaskState.SCHEDULED]
            assert task_id not in {r.id for r in await other.list_tasks(task_name="conf_echo")}
            done = await _final(s, task_id)
            assert done.state is TaskState.SUCCEEDED and done.result == delay, done
            assert done.started_at is not None and mine.scheduled_at is not None
            late = (done.started_at - mine.scheduled_at).total_seconds()
            # never before its due time (the worker held it), and not stalled
            assert -0.1 <= late <= STALL, f"delay {delay}: started {late:.3f} s after due ({done})"
            assert task_id not in {r.id for r in await s.list_scheduled_tasks("conf_echo")}


async def test_a_held_run_cancelled_before_due_never_runs(
    engine: Any, worker: Any, connect_scheduler: Any
) -> None:
    async with connect_scheduler(engine) as s, connect_scheduler(engine) as other:
        mine = await s.schedule_task("conf_echo", {"value": "mine"}, delay_seconds=4)
        theirs = await s.schedule_task("conf_echo", {"value": "theirs"}, delay_seconds=4)
        # the worker holds both (queued at once); the cancels reach them mid-hold or before
        assert await s.cancel_task(mine) is True
        assert await other.cancel_task(theirs) is True  # a process that did not make it
        for task_id in (mine, theirs):
            info = await s.get_task_status(task_id)
            assert info.state is TaskState.CANCELLED, info
            assert (info.attempts, info.started_at, info.result) == (0, None, None), info
            assert await s.cancel_task(task_id) is False
        # until 2 s past the due time: still cancelled, the task never called
        due = (await s.get_task_status(mine)).scheduled_at
        assert due is not None
        while utc_now() < due + timedelta(seconds=2):
            for task_id in (mine, theirs):
                info = await other.get_task_status(task_id)
                assert info.state is TaskState.CANCELLED and info.attempts == 0, info
            await asyncio.sleep(0.25)


async def test_a_held_run_survives_its_worker_being_killed(
    engine: Any, spawn_worker: Any, connect_scheduler: Any
) -> None:
    first = spawn_worker(engine)
    async with connect_scheduler(engine) as s:
        # a fresh worker can take its first run late (seen: still queued 5 s
        # later on a loaded machine): one run first, so the held one is taken
        # while it waits
        warm = await s.run_task("conf_echo", {"value": "warm"})
        assert (await _final(s, warm, timeout=STALL)).state is TaskState.SUCCEEDED
        seen: list[str] = []
        for _ in range(3):  # the kill must find the run held: try again if it was not taken in time
            task_id = await s.schedule_task("conf_echo", {"value": "kept"}, delay_seconds=5.5)
            info = await s.get_task_status(task_id)
            assert info.state is TaskState.SCHEDULED, info
            due = info.scheduled_at
            assert due is not None
            try:
                # the worker holds it: the engine says it runs there
                await poll_until(
                    lambda task_id=task_id: s._lookups.get_run(task_id),  # its id is its run's
                    lambda details: details is not None and str(details.run.status).endswith("RUNNING"),
                    timeout=max(0.0, (due - utc_now()).total_seconds() - 0.5),
                    interval=0.1,
                    what="the worker to take the held run",
                )
                break
            except PollTimeoutError as exc:
                status = getattr(getattr(exc.last, "run", None), "status", None)
                seen.append(f"{task_id}: engine {status} at {utc_now():%H:%M:%S.%f}, due {due:%H:%M:%S.%f}")
                await _final(s, task_id, timeout=STALL)
        else:
            pytest.fail(f"no held run was taken by the worker before it was due, in 3 tries: {seen}")
        first.signal(signal.SIGKILL)
        first.wait(timeout=30)
        spawn_worker(engine)
        done = await _final(s, task_id, timeout=180)
        assert done.state is TaskState.SUCCEEDED and done.result == "kept", done
        assert done.started_at is not None and done.started_at >= due, done
