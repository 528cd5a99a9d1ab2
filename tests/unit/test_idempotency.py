"""owlclaw.scheduler.idempotency: a repeated delivery returns the first result
and does not repeat the effect; the SQLite store holds across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import PayloadError, TaskDefinitionError
from owlclaw.scheduler.idempotency import (
    IdempotencyStore,
    MemoryIdempotencyStore,
    SqliteIdempotencyStore,
    idempotent,
    run_once,
)


def ctx(task_id: str = "t1", attempt: int = 1, name: str = "charge") -> TaskContext:
    return TaskContext(task_id=task_id, task_name=name, attempt=attempt, scheduler=MemoryScheduler())


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IdempotencyStore:
    if request.param == "memory":
        return MemoryIdempotencyStore()
    return SqliteIdempotencyStore(tmp_path / "idem.sqlite")


async def test_a_redelivered_run_returns_the_first_result_without_repeating_the_effect(
    store: IdempotencyStore,
) -> None:
    charges: list[int] = []

    @idempotent(store)
    async def charge(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        charges.append(payload["amount"])
        return {"charged": payload["amount"], "attempt": ctx.attempt}

    first = await charge({"amount": 5}, ctx(attempt=1))
    again = await charge({"amount": 5}, ctx(attempt=2))  # the engine delivered it again
    assert first == again == {"charged": 5, "attempt": 1}
    assert charges == [5]
    await charge({"amount": 7}, ctx(task_id="t2"))  # another run is another key
    assert charges == [5, 7]


async def test_a_run_that_crashed_before_returning_runs_again(store: IdempotencyStore) -> None:
    calls: list[int] = []

    @idempotent(store)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("worker lost mid-task")
        return ctx.attempt

    with pytest.raises(ConnectionError):
        await flaky({}, ctx(attempt=1))
    assert await flaky({}, ctx(attempt=2)) == 2
    assert await flaky({}, ctx(attempt=3)) == 2
    assert calls == [1, 2]


async def test_key_from_the_payload_and_sync_functions(store: IdempotencyStore) -> None:
    sent: list[str] = []

    @idempotent(store, key=lambda payload, ctx: payload["order"])
    def send(payload: dict[str, Any], ctx: TaskContext) -> str:
        sent.append(payload["order"])
        return f"sent {payload['order']}"

    # two runs (different task ids) for the same order: one email
    assert await send({"order": "A1"}, ctx(task_id="t1")) == "sent A1"
    assert await send({"order": "A1"}, ctx(task_id="t2")) == "sent A1"
    assert sent == ["A1"]


async def test_keys_are_per_task_name(store: IdempotencyStore) -> None:
    @idempotent(store)
    async def one(payload: dict[str, Any], ctx: TaskContext) -> str:
        return ctx.task_name

    assert await one({}, ctx(name="a")) == "a"
    assert await one({}, ctx(name="b")) == "b"


async def test_run_once_guards_a_step_and_returns_json(store: IdempotencyStore) -> None:
    steps: list[str] = []

    def step() -> tuple[int, int]:
        steps.append("x")
        return (1, 2)

    assert await run_once(store, "t1:email", step) == [1, 2]  # as JSON carries it
    assert await run_once(store, "t1:email", step) == [1, 2]
    assert steps == ["x"]


async def test_first_result_stored_wins(store: IdempotencyStore) -> None:
    assert await store.put("k", '"first"') == '"first"'
    assert await store.put("k", '"second"') == '"first"'
    assert await store.get("k") == '"first"'
    assert await store.get("missing") is None


async def test_bad_input_gets_typed_errors(store: IdempotencyStore) -> None:
    with pytest.raises(TaskDefinitionError, match="non-empty string"):
        await run_once(store, "", lambda: 1)
    with pytest.raises(TaskDefinitionError, match="MemoryIdempotencyStore"):
        idempotent({})  # type: ignore[arg-type]
    with pytest.raises(TaskDefinitionError, match="payload, ctx"):
        idempotent(store, key="order_id")  # type: ignore[arg-type]

    @idempotent(store, key=lambda payload, ctx: payload.get("order"))
    async def no_key(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    with pytest.raises(TaskDefinitionError, match=r"ctx\.task_id"):
        await no_key({}, ctx())
    with pytest.raises(PayloadError, match="JSON"):
        await run_once(store, "k2", lambda: {1, 2})
    assert await store.get("k2") is None  # nothing recorded for a result it could not store


async def test_works_under_scheduler_task_on_the_memory_backend() -> None:
    store = MemoryIdempotencyStore()
    effects: list[str] = []
    scheduler = MemoryScheduler(MemoryConfig())

    @scheduler.task(name="notify")
    @idempotent(store)
    async def notify(payload: dict[str, Any], ctx: TaskContext) -> str:
        effects.append(ctx.task_id)
        return "done"

    async with scheduler:
        await scheduler.start_worker()
        task_id = await scheduler.run_task("notify", {})
        info = await scheduler.wait_for_task(task_id, timeout=5)
    assert info.state is TaskState.SUCCEEDED and info.result == "done"
    assert effects == [task_id] and len(store) == 1


def _claim(path: str, value: str) -> str:
    import asyncio

    return asyncio.run(SqliteIdempotencyStore(path).put("shared", value))


def test_sqlite_store_first_writer_wins_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "idem.sqlite")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        kept = pool.starmap(_claim, [(path, f'"p{i}"') for i in range(8)])
    assert len(set(kept)) == 1  # every process got the one value stored first
    assert SqliteIdempotencyStore(path).count() == 1
    assert "idem.sqlite" in repr(SqliteIdempotencyStore(path))


def _open_at_once(path: Path, count: int) -> list[str]:
    """``count`` threads each open a new store on ``path`` at one instant and claim a key."""
    start = threading.Barrier(count)
    kept: list[str] = []

    def claim(i: int) -> None:
        start.wait()
        try:
            kept.append(SqliteIdempotencyStore(path)._put("shared", f'"t{i}"'))
        except sqlite3.Error as exc:
            kept.append(f"error: {exc}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return kept


def test_sqlite_stores_opening_a_new_file_at_once_all_open(tmp_path: Path) -> None:
    # Switching a new file to WAL from several connections at one instant
    # fails some with "database is locked" unless the store retries; one
    # round in about 15 failed before, so 150 rounds show it.
    for round_ in range(150):
        kept = _open_at_once(tmp_path / f"idem{round_}.sqlite", 4)
        assert len(kept) == 4 and len(set(kept)) == 1, f"round {round_}: {kept}"
