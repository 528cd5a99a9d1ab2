"""Make a task idempotent under at-least-once delivery.

The Hatchet engine may run a task more than once: when a worker dies mid-run,
another worker runs it again from the start (``ctx.attempt`` is then 2), and a
durable task resumed after a crash runs its code before the sleep again. Wrap
the part with side effects so that a repeat returns the first result instead
of doing it twice::

    from owlclaw.scheduler.idempotency import SqliteIdempotencyStore, idempotent, run_once

    store = SqliteIdempotencyStore("/var/lib/agent/idempotency.sqlite")

    @scheduler.task(name="charge")
    @idempotent(store)                       # keyed by ctx.task_id
    async def charge(payload, ctx):
        return await payments.charge(payload["order"], payload["amount"])

    @scheduler.task(name="remind", durable=True)
    async def remind(payload, ctx):
        await run_once(store, f"{ctx.task_id}:email", lambda: send_email(payload))
        await ctx.sleep(3600)

A key is recorded only when the wrapped code returns, so a run that crashed
midway runs again (that is the point of the retry), even one that crashed after
its side effect but before the key was written. Two executions that overlap
in time can both run; the first result stored wins and both return it. A side
effect that must never repeat needs its own guard downstream (e.g. a unique
constraint or the provider's idempotency key, fed with ``ctx.task_id``).

Stores: :class:`MemoryIdempotencyStore` (one process; tests) and
:class:`SqliteIdempotencyStore` (a file that every worker on one host shares).
Any object with the two methods of :class:`IdempotencyStore` works too, e.g.
one backed by your own database.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import random
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import TaskDefinitionError
from owlclaw.scheduler.kit.payloads import dump_json
from owlclaw.scheduler.models import TaskContext

__all__ = [
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "SqliteIdempotencyStore",
    "idempotent",
    "run_once",
]

TaskFunc = Callable[[Any, TaskContext], Any]
KeyFunc = Callable[[Any, TaskContext], str]


@runtime_checkable
class IdempotencyStore(Protocol):
    """Remembers the JSON result recorded under a key."""

    async def get(self, key: str) -> str | None:
        """The JSON text stored under ``key``, or None."""
        ...

    async def put(self, key: str, value: str) -> str:
        """Store ``value`` unless ``key`` already has one; return the value kept."""
        ...


class MemoryIdempotencyStore:
    """A dict in this process: for tests and single-process agents."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def put(self, key: str, value: str) -> str:
        return self._values.setdefault(key, value)

    def __len__(self) -> int:
        return len(self._values)


class SqliteIdempotencyStore:
    """A SQLite file shared by every process on one host (workers, tests).

    The first ``put`` of a key wins, across processes. Not for workers on
    several machines: give those a store on your database. Commits are not
    fsynced one by one (WAL with ``synchronous=NORMAL``): a killed process
    loses nothing it stored, a power cut can lose the last keys.
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS owlclaw_idempotency "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, stored_at TEXT NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"SqliteIdempotencyStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        # Processes that switch a new file to WAL at the same moment can get
        # "database is locked" at once, without SQLite's busy wait: retry
        # until the store's timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # no fsync per commit: safe when a worker is killed (the risk here),
                # and it narrows the window between an effect and its record
                conn.execute("PRAGMA synchronous=NORMAL")
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(random.uniform(0.01, 0.05))

    def _get(self, key: str) -> str | None:
        row = (
            self._connect().execute("SELECT value FROM owlclaw_idempotency WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else str(row[0])

    def _put(self, key: str, value: str) -> str:
        conn = self._connect()
        conn.execute(
            "INSERT OR IGNORE INTO owlclaw_idempotency (key, value, stored_at) VALUES (?, ?, ?)",
            (key, value, utc_now().isoformat()),
        )
        kept = self._get(key)
        return value if kept is None else kept

    async def get(self, key: str) -> str | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, value: str) -> str:
        return await asyncio.to_thread(self._put, key, value)

    def count(self) -> int:
        """How many keys are stored."""
        return int(self._connect().execute("SELECT count(*) FROM owlclaw_idempotency").fetchone()[0])


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise TaskDefinitionError(
            f"an idempotency key must be a non-empty string, got {key!r}; "
            'derive it from ctx.task_id or a payload field, e.g. f"{ctx.task_id}:email"'
        )
    return key


async def run_once(store: IdempotencyStore, key: str, fn: Callable[[], Any]) -> Any:
    """Call ``fn()`` (sync or async) unless ``key`` already holds a result.

    Returns the result as JSON carries it, the same on the first call and on
    a repeat. :raises PayloadError: the result is not JSON.
    :raises TaskDefinitionError: ``key`` is not a non-empty string.
    """
    key = _check_key(key)
    stored = await store.get(key)
    if stored is not None:
        return json.loads(stored)
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return json.loads(await store.put(key, dump_json(result, "the idempotent result")))


def idempotent(
    store: IdempotencyStore, *, key: KeyFunc | None = None
) -> Callable[[TaskFunc], Callable[[Any, TaskContext], Awaitable[Any]]]:
    """Decorate a task function so a repeated delivery returns the first result.

    ``key(payload, ctx)`` names an execution; by default ``ctx.task_id``, which
    is the same in every attempt of a run. Keys are prefixed with the task
    name. Place it under ``@scheduler.task``.

    :raises TaskDefinitionError: ``store`` lacks get/put, or ``key`` is not callable.
    """
    if not isinstance(store, IdempotencyStore):
        raise TaskDefinitionError(
            f"idempotent() needs a store with async get() and put(), got {type(store).__name__}; "
            "use MemoryIdempotencyStore() or SqliteIdempotencyStore(path)"
        )
    if key is not None and not callable(key):
        raise TaskDefinitionError(
            "idempotent(key=...) must be a function (payload, ctx) -> str, "
            'e.g. key=lambda payload, ctx: payload["order_id"]'
        )

    def decorate(func: TaskFunc) -> Callable[[Any, TaskContext], Awaitable[Any]]:
        @functools.wraps(func)
        async def wrapper(payload: Any, ctx: TaskContext) -> Any:
            name = key(payload, ctx) if key is not None else ctx.task_id
            full_key = f"{ctx.task_name}:{_check_key(name)}"
            if inspect.iscoroutinefunction(func):
                return await run_once(store, full_key, lambda: func(payload, ctx))
            return await run_once(store, full_key, lambda: asyncio.to_thread(func, payload, ctx))

        return wrapper

    return decorate
