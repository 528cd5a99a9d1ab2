"""The worker app of the fault tests: ``owlclaw-scheduler worker fault_app:scheduler``
(run from this directory, on the backend that ``OWLCLAW_CONFIG`` configures).

Every execution appends a line ``<event> <task_id> <attempt> <pid> <unix time>``
to ``$OWLCLAW_FAULT_DIR/events.log``, so the test process counts executions,
duplicates and wake-ups across worker processes (one short ``O_APPEND`` write
per line, so lines from several processes never interleave).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from owlclaw.scheduler import TaskContext
from owlclaw.scheduler.idempotency import SqliteIdempotencyStore, idempotent
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.registry import create_scheduler


def directory() -> Path:
    return Path(os.environ["OWLCLAW_FAULT_DIR"])


def record(event: str, ctx: TaskContext) -> None:
    write_event(event, ctx.task_id, ctx.attempt)


def write_event(event: str, task_id: str, attempt: int = 0) -> None:
    line = f"{event} {task_id} {attempt} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(directory() / "events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class SharedStore:
    """The workers' idempotency store, a SQLite file in the fault directory,
    opened on first use (the test process imports this module too)."""

    _store: SqliteIdempotencyStore | None = None

    def _open(self) -> SqliteIdempotencyStore:
        if self._store is None:
            self._store = SqliteIdempotencyStore(directory() / "idempotency.sqlite")
        return self._store

    async def get(self, key: str) -> str | None:
        return await self._open().get(key)

    async def put(self, key: str, value: str) -> str:
        kept = await self._open().put(key, value)
        write_event("stored", key.partition(":")[2])  # keys are "<task name>:<task id>"
        return kept


@idempotent(SharedStore())
async def apply_effect(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    # the side effect: repeated only by a delivery that overlaps the first, or
    # follows one whose worker died before its result was stored
    record("effect", ctx)
    return {"n": payload.get("n")}


def register(scheduler: Scheduler) -> Scheduler:
    """Declare the fault tasks (``fault_*``) on ``scheduler``."""

    @scheduler.task(name="fault_work")
    async def work(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        record("start", ctx)
        await asyncio.sleep(float(payload.get("seconds", 0)))
        record("end_cancelled" if ctx.cancelled else "end", ctx)  # cancelled: told during the grace
        return {"attempt": ctx.attempt, "pid": os.getpid()}

    @scheduler.task(name="fault_durable", durable=True)
    async def durable(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        record("before_sleep", ctx)
        await ctx.sleep(float(payload["seconds"]))
        record("woke", ctx)
        return {"attempt": ctx.attempt}

    @scheduler.task(name="fault_tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        record("tick", ctx)

    @scheduler.task(name="fault_soak")
    async def soak(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        record("exec", ctx)  # every delivery, duplicates included
        result = await apply_effect(payload, ctx)
        # a worker killed now has done the effect but not reported the run: the
        # run is delivered again and the idempotency store absorbs the repeat
        await asyncio.sleep(float(payload.get("seconds", 0)))
        record("return", ctx)  # this delivery ran to its end (a killed one never does)
        return result

    return scheduler


scheduler = register(create_scheduler())
