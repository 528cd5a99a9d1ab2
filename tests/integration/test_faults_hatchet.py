"""Faults on the real engine: a killed worker, a worker restarted during a
durable sleep, the engine and its PostgreSQL restarted, cancel racing the due
time, and the schedule timeout that bounds how long a run waits for a worker.

Workers run ``tests/integration/fault_app.py`` in subprocesses and record every
execution in a file, so duplicates and wake-ups are counted, not guessed. The
tests that stop the engine or PostgreSQL use a private engine of their own
(the session's engine is shared). Bounds below come from measurements on a
2-core machine with hatchet-lite v0.105.0; docs/reliability.md lists them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fault_harness import FaultWorker, Target, count, read_events, wait_final, wait_for_event

from owlclaw.scheduler.errors import WaitTimeoutError
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until

pytestmark = pytest.mark.integration

# The engine hands a dead worker's run to another one after its heartbeat times
# out: ~30 s measured. A durable wake-up is late by at most that much plus polling.
REASSIGN_BOUND = 60.0
DURABLE_LATE_BOUND = 45.0
# After an engine or database restart, dispatch resumes up to ~60 s later, and
# an idle queue is polled at most every 45 s (v0.105.0: 30 s plus jitter).
OUTAGE_CATCH_UP = 240.0
# A held run whose final event the engine lost is told again by its worker
# 30 s after its attempt, then 60 s later... (confirm.py); the engine is back
# within ~15 s of a 5 s outage here.
HELD_CATCH_UP = 120.0


@pytest.fixture
def shared(hatchet_engine: Any) -> Target:
    """The session's engine, in a namespace of this test's own."""
    return Target.of(hatchet_engine)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[FaultWorker]]:
    started: list[FaultWorker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def private_engine(local_engine_binaries: None) -> Iterator[tuple[Any, Any]]:
    """A PostgreSQL + hatchet-lite of this module's own, which the tests restart."""
    from owlclaw.backends.hatchet.local.engine import LocalEngine
    from owlclaw.backends.hatchet.local.postgres import LocalPostgres

    pg = LocalPostgres().start()
    engine = LocalEngine(pg.database_url("hatchet"), startup_timeout=180)
    try:
        engine.start()
        yield pg, engine
    finally:
        engine.stop()
        pg.stop()


async def spawn(target: Target, tmp_path: Path, workers: list[FaultWorker]) -> FaultWorker:
    worker = FaultWorker(target, tmp_path)
    workers.append(worker)
    return await worker.started()


async def until(predicate: Any, timeout: float, what: str) -> None:
    await poll_until(predicate, timeout=timeout, interval=0.3, what=what)


@pytest.fixture
async def connected(shared: Target) -> AsyncIterator[Any]:
    async with shared.scheduler() as client:
        yield client


# --------------------------------------------------------------------------
# workers killed


async def test_sigkilled_worker_run_is_retried_and_durable_sleep_wakes_once(
    shared: Target, connected: Any, tmp_path: Path, workers: list[FaultWorker]
) -> None:
    """One kill, two guarantees (the engine's heartbeat timeout is paid once):
    a plain run in flight is run again on another worker and succeeds; a
    durable sleep in flight wakes once, on the new worker, on time within the
    bound."""
    first = await spawn(shared, tmp_path, workers)
    # a fresh engine hands out its first runs seconds late (docs/hatchet.md):
    # one run of each kind first, so both below are in flight at the kill
    warm = [
        await connected.run_task("fault_work", {}),
        await connected.run_task("fault_durable", {"seconds": 0}),
    ]
    for task_id in warm:
        await connected.wait_for_task(task_id, timeout=60)
    work_id = await connected.run_task("fault_work", {"seconds": 15})
    sleep_id = await connected.run_task("fault_durable", {"seconds": 10})
    await wait_for_event(tmp_path, "start", work_id, timeout=30)
    began = await wait_for_event(tmp_path, "before_sleep", sleep_id, timeout=30)
    await asyncio.sleep(1)
    seen = [(e.kind, e.task_id) for e in read_events(tmp_path)]
    assert ("end", work_id) not in seen and ("woke", sleep_id) not in seen, (
        f"not both in flight at the kill: {seen}"
    )
    first.kill()
    killed_at = time.time()
    second = await spawn(shared, tmp_path, workers)

    work = await connected.wait_for_task(work_id, timeout=REASSIGN_BOUND + 30)
    assert work.state is TaskState.SUCCEEDED, work.error
    assert work.attempts == 2  # the lost execution counts
    assert work.result == {"attempt": 2, "pid": second.pid}
    events = read_events(tmp_path)
    assert [(e.kind, e.pid) for e in events if e.task_id == work_id] == [
        ("start", first.pid),
        ("start", second.pid),
        ("end", second.pid),
    ]
    retried = next(e.at for e in events if e.task_id == work_id and e.pid == second.pid)
    assert retried - killed_at <= REASSIGN_BOUND

    slept = await connected.wait_for_task(sleep_id, timeout=10 + DURABLE_LATE_BOUND + 30)
    assert slept.state is TaskState.SUCCEEDED, slept.error
    events = read_events(tmp_path)
    woke = [e for e in events if e.kind == "woke"]
    assert len(woke) == 1 and woke[0].pid == second.pid  # wakes once, on the new worker
    # the resumed run starts from the top: code before the sleep ran twice
    assert count(events, "before_sleep")[sleep_id] == 2
    late = woke[0].at - (began.at + 10)
    print(
        f"SIGKILLed worker: its run restarted on another worker {retried - killed_at:.1f}s after the kill; "
        f"a durable 10 s sleep woke {late:.1f}s late"
    )
    assert -0.5 <= late <= DURABLE_LATE_BOUND


# --------------------------------------------------------------------------
# the engine's read side missing a run, or the engine losing one (docs/hatchet.md)


async def test_a_run_missing_from_the_read_side_or_lost_still_reads_final(
    private_engine: tuple[Any, Any],
    tmp_path: Path,
    workers: list[FaultWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both were seen after a PostgreSQL restart, for runs triggered just
    before it: a run that ran but that the read side (REST, OLAP tables) has
    no row for, and a run the engine never stored. Made here on purpose (the
    read side's rows deleted; an id the engine never had), with the client's
    waits shortened so the test takes seconds."""
    import psycopg

    from owlclaw.backends.hatchet import lookups, status
    from owlclaw.backends.hatchet.status import LocalRecord
    from owlclaw.scheduler.clock import utc_now

    monkeypatch.setattr(status, "OPEN_CHECK_AFTER", timedelta(seconds=1))
    monkeypatch.setattr(lookups, "READ_SIDE_GRACE", 1.0)
    monkeypatch.setattr(lookups, "CHECK_EVERY", 0.5)
    monkeypatch.setattr(lookups, "LOST_AFTER", timedelta(seconds=3))
    pg, engine = private_engine
    target = Target.of(engine.connection)
    async with target.scheduler() as client:
        await spawn(target, tmp_path, workers)
        ran = await client.run_task("fault_work", {})
        done = await client.wait_for_task(ran, timeout=120)
        assert done.state is TaskState.SUCCEEDED, done
        with psycopg.connect(pg.database_url("hatchet"), autocommit=True) as db:
            for table in ("v1_runs_olap", "v1_tasks_olap", "v1_lookup_table_olap"):
                db.execute(f"delete from {table} where external_id = %s", (ran,))
        again = await client.wait_for_task(ran, timeout=60)
        assert (again.state, again.result) == (TaskState.SUCCEEDED, done.result), again

        never = str(uuid.uuid4())  # as if the engine had answered a trigger with it, then lost it
        client._lookups.local[never] = LocalRecord(
            task_name="fault_work", payload={}, created_at=utc_now(), due=None
        )
        lost = await client.wait_for_task(never, timeout=60)
        assert lost.state is TaskState.FAILED and "the engine lost this run" in str(lost.error), lost


# --------------------------------------------------------------------------
# engine and PostgreSQL restarted


async def _outage(
    restart: Any, target: Target, tmp_path: Path, workers: list[FaultWorker]
) -> dict[str, float]:
    """Schedules due during and after an outage, and a cron: all survive it."""
    async with target.scheduler() as client:
        worker = await spawn(target, tmp_path, workers)
        cron_id = await client.add_cron("fault_tick", "*/2 * * * * *")
        due_during = [
            await client.schedule_task("fault_work", {"n": i}, delay_seconds=4 + i) for i in range(4)
        ]
        due_after = [
            await client.schedule_task("fault_work", {"n": i}, delay_seconds=15 + i) for i in range(3)
        ]
        ran_now = await client.run_task("fault_work", {})
        await wait_for_event(tmp_path, "end", ran_now)
        t0 = time.monotonic()
        await asyncio.to_thread(restart)
        back, back_wall = time.monotonic(), time.time()
        # same client and worker objects: nothing here reconnects them by hand
        assert cron_id in [c.id for c in await client.list_crons("fault_tick")]
        after_restart = await client.run_task("fault_work", {"after": "restart"})
        ids = dict.fromkeys(due_during, "due in the outage") | dict.fromkeys(due_after, "due after it")
        ids[after_restart] = "run after it"
        try:
            infos = await wait_final(client, list(ids), timeout=OUTAGE_CATCH_UP)
        except WaitTimeoutError as exc:
            raise AssertionError(f"{exc}; the runs: {ids}") from exc
        caught_up = max(i.finished_at for i in infos.values()).timestamp() - back_wall
        done = TaskState.SUCCEEDED
        not_done = {t: (ids[t], i.state.value, i.error) for t, i in infos.items() if i.state is not done}
        assert not not_done, not_done
        ran = count(read_events(tmp_path), "end")
        assert all(ran[t] == 1 for t in infos), ran
        assert {i.result["pid"] for i in infos.values()} == {worker.pid}  # the worker reconnected itself
        await until(
            lambda: _ticks_since(tmp_path, back_wall), timeout=30, what="a cron tick after the restart"
        )
        await client.remove_cron(cron_id)
        return {"down": back - t0, "caught_up": caught_up}


async def _ticks_since(directory: Path, since: float) -> bool:
    return any(e.kind == "tick" and e.at > since for e in read_events(directory))


async def test_engine_restart_loses_nothing(
    private_engine: tuple[Any, Any], tmp_path: Path, workers: list[FaultWorker]
) -> None:
    _, engine = private_engine
    target = Target.of(engine.connection)
    figures = await _outage(lambda: engine.restart(downtime=5), target, tmp_path, workers)
    print(f"engine outage {figures['down']:.1f}s, every task done {figures['caught_up']:.1f}s after")


async def test_postgres_restart_loses_nothing(
    private_engine: tuple[Any, Any], tmp_path: Path, workers: list[FaultWorker]
) -> None:
    pg, engine = private_engine
    target = Target.of(engine.connection)
    figures = await _outage(lambda: pg.restart(downtime=5), target, tmp_path, workers)
    print(f"database outage {figures['down']:.1f}s, every task done {figures['caught_up']:.1f}s after")


# --------------------------------------------------------------------------
# held short delays through an engine or PostgreSQL restart


async def _held_through(restart: Any, target: Target, tmp_path: Path, workers: list[FaultWorker]) -> str:
    """Held short delays (``hold_short_delays``) held by their worker when the
    outage begins and due in it, and ordinary runs started just before it that
    end in it: each ends SUCCEEDED, its task run once. The engine can lose the
    final event of a run that ends then (docs/hatchet.md, "Short delays"); its
    worker then sends it again (confirm.py)."""
    async with target.scheduler(hold_short_delays=True) as client:
        worker = await spawn(target, tmp_path, workers)
        # the engine hands runs out promptly again (it can take a minute after an earlier restart)
        await wait_for_event(tmp_path, "end", await client.run_task("fault_work", {}), timeout=120)
        held = [
            await client.schedule_task("fault_work", {"n": i}, delay_seconds=4.0 + 0.25 * i) for i in range(8)
        ]

        async def holding() -> list[str]:
            runs = [await client._lookups.get_run(t) for t in held]  # a held run's id is its run's
            return [str(r.run.status).rpartition(".")[2] if r is not None else "none" for r in runs]

        # the worker holds them all when the outage begins; they fall due in it (a
        # worker slow to take them may have ended the first: that one is past holding)
        await poll_until(
            holding,
            lambda statuses: all(s in ("RUNNING", "COMPLETED") for s in statuses),
            timeout=30,
            interval=0.2,
            what="the worker to hold every run (the engine's statuses)",
        )
        # ordinary runs that end 1.5 to 3 s after they began: in the outage
        ending = [await client.run_task("fault_work", {"seconds": 1.5 + 0.5 * i}) for i in range(4)]
        await poll_until(
            lambda: count(read_events(tmp_path), "start"),
            lambda began: all(began[t] for t in ending),
            timeout=30,
            interval=0.1,
            what="the worker to begin every ordinary run (starts per run)",
        )
        stopping = time.time()
        await asyncio.to_thread(restart)
        back, back_wall = time.monotonic(), time.time()
        runs = dict.fromkeys(held, "held") | dict.fromkeys(ending, "ending")
        seen: dict[str, list[str]] = {t: [] for t in runs}

        async def states() -> list[TaskState]:
            now = []
            for task_id in runs:
                state = (await client.get_task_status(task_id)).state
                if not seen[task_id] or seen[task_id][-1] != state.value:
                    seen[task_id].append(state.value)
                now.append(state)
            return now

        try:
            await poll_until(
                states,
                lambda now: all(s is TaskState.SUCCEEDED for s in now),
                timeout=HELD_CATCH_UP,
                interval=1.0,
                what="every run SUCCEEDED after the outage",
            )
        except PollTimeoutError as exc:
            went = {f"{runs[t]} {t}": states for t, states in seen.items()}
            raise AssertionError(f"{exc}; the states each run went through: {went}") from exc
        done = time.monotonic() - back
        events = read_events(tmp_path)
        ran = count(events, "end")
        assert all(ran[t] == 1 for t in runs), {f"{runs[t]} {t}": ran[t] for t in runs}
        in_outage = sum(
            1 for e in events if e.kind == "end" and e.task_id in ending and stopping < e.at < back_wall
        )
        resent = worker.log_path.read_text(errors="replace").count("sent its final event again")
        return (
            f"{done:.1f}s after it was back ({in_outage} of {len(ending)} ordinary runs ended in the outage; "
            f"{resent} final events sent again by the worker)"
        )


# the database test first: runs resume about 12 s after a database restart and
# about 60 s after an engine one, which the test after it would wait out
async def test_runs_ending_in_a_postgres_restart_end_once(
    private_engine: tuple[Any, Any], tmp_path: Path, workers: list[FaultWorker]
) -> None:
    pg, engine = private_engine
    target = Target.of(engine.connection)
    done = await _held_through(lambda: pg.restart(downtime=5), target, tmp_path, workers)
    print(f"database restart: every held and ordinary run SUCCEEDED {done}")


async def test_runs_ending_in_an_engine_restart_end_once(
    private_engine: tuple[Any, Any], tmp_path: Path, workers: list[FaultWorker]
) -> None:
    _, engine = private_engine
    target = Target.of(engine.connection)
    done = await _held_through(lambda: engine.restart(downtime=5), target, tmp_path, workers)
    print(f"engine restart: every held and ordinary run SUCCEEDED {done}")


# --------------------------------------------------------------------------
# cancel racing the due time


async def test_cancel_racing_the_due_time_is_cancelled_or_run_never_both(
    shared: Target, connected: Any, tmp_path: Path, workers: list[FaultWorker]
) -> None:
    await spawn(shared, tmp_path, workers)
    loop = asyncio.get_running_loop()
    # a 3 s schedule fires up to ~5 s late (the engine polls schedules): cancel
    # from 0.5 s before to 7 s after the due time, before, during and after the run
    offsets = [-0.5 + i * 0.4 for i in range(20)]

    async def race(offset: float) -> tuple[str, bool]:
        task_id = await connected.schedule_task("fault_work", {"seconds": 1}, delay_seconds=3)
        due = loop.time() + 3
        await asyncio.sleep(max(0.0, due + offset - loop.time()))
        return task_id, await connected.cancel_task(task_id)

    outcomes = dict(await asyncio.gather(*(race(o) for o in offsets)))
    infos = await wait_final(connected, list(outcomes), timeout=60)
    await asyncio.sleep(2)  # let a run that should not exist show up in the log
    events = read_events(tmp_path)
    started, ended, told = count(events, "start"), count(events, "end"), count(events, "end_cancelled")
    for task_id, cancelled in outcomes.items():
        info = infos[task_id]
        # cancel_task's answer and the final status agree
        assert info.state is (TaskState.CANCELLED if cancelled else TaskState.SUCCEEDED), (cancelled, info)
        if cancelled:
            assert info.result is None
            # never ran to the end unaware: it did not start, was interrupted,
            # or saw ctx.cancelled during the SDK's 1 s grace
            assert ended[task_id] == 0, f"{task_id} is CANCELLED but its code finished unaware"
        else:
            assert started[task_id] == ended[task_id] == 1
            assert info.result is not None and info.result["attempt"] == 1
    cancelled_ids = [t for t, c in outcomes.items() if c]
    print(
        f"cancel race: {len(cancelled_ids)} cancelled "
        f"({sum(1 for t in cancelled_ids if started[t])} after their code had started, "
        f"{sum(1 for t in cancelled_ids if told[t])} of them finished within the grace), "
        f"{len(outcomes) - len(cancelled_ids)} ran"
    )


# --------------------------------------------------------------------------
# how long a run waits for a worker


async def test_schedule_timeout_setting_reaches_the_engine(shared: Target) -> None:
    async with shared.scheduler() as default:
        proto = default._connection.standalone("fault_work").to_proto()
        assert proto.tasks[0].schedule_timeout == "24h"  # not the SDK's 5 minutes
    # no worker serves this namespace: the run waits, then the engine fails it
    async with shared.scheduler(schedule_timeout_seconds=2) as client:
        t0 = time.monotonic()
        task_id = await client.run_task("fault_work", {})
        info = await client.wait_for_task(task_id, timeout=90)
        waited = time.monotonic() - t0
    print(f"a run with schedule_timeout_seconds=2 and no worker failed after {waited:.1f}s")
    assert info.state is TaskState.FAILED
    assert info.attempts == 0 and info.started_at is None
    assert info.error is not None and "schedule_timeout_seconds" in info.error
