"""The schedule state of the Hatchet backend, in the application's PostgreSQL
database (``scheduler.hatchet.state_database_url``), through psycopg 3.

- One connection pool per running event loop (a worker process runs two SDK
  workers, each on its own loop in its own thread; the client has its own),
  opened on first use.
- The schema is created on first use, idempotently, under a transaction-level
  advisory lock, with its version in ``owlclaw_schema_version``: processes that
  start at once wait for each other instead of failing.
- The URL is a secret: it is in no repr, log line or error. Connection
  failures raise ``SchedulerConnectionError`` naming the host, port and
  database and the setting to fix, never the user's password.

The rules (what fires) are in ``gate.py``; this module is the SQL only (the
occurrences' table in ``claims.py``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import SecretStr

from owlclaw.backends.hatchet.claims import Claims, Conn
from owlclaw.backends.hatchet.rows import FROM_CRON, ScheduleRow, as_utc, spec_to_json
from owlclaw.backends.hatchet.schema import COMPONENT, DDL, LOCK_KEY, SCHEMA_VERSION
from owlclaw.scheduler.errors import ConfigError, SchedulerConnectionError

__all__ = ["SCHEMA_VERSION", "SETTING", "Conn", "ScheduleStore"]

SETTING: Final = "scheduler.hatchet.state_database_url (or OWLCLAW_STATE_DATABASE_URL)"
_COLUMNS: Final = (
    "task_name, spec, payload, gen, handled_until, next_fire_at, paused_at, note, skips, buffered, "
    "fired, skipped, coalesced"
)


class ScheduleStore(Claims):
    """The schedule tables of one state database (any number of namespaces)."""

    def __init__(
        self,
        url: str | SecretStr,
        *,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        lock_timeout: float = 30.0,
    ) -> None:
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        try:
            parts = conninfo_to_dict(self._url)
        except psycopg.Error:
            raise ConfigError(
                f"the schedule state database URL is not a PostgreSQL URL: set {SETTING} to "
                "postgresql://user:password@host:5432/owlclaw"
            ) from None
        host = parts.get("host") or parts.get("hostaddr") or "localhost"
        self._where = f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or '?'}"
        self._password = str(parts.get("password") or "")
        self._max = max_connections
        self._lock_ms = max(1, round(lock_timeout * 1000))
        self._timeout = connect_timeout
        self._connect_s = max(2, round(connect_timeout))  # libpq's connect_timeout: whole seconds, >= 2
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._schema_ready = False

    @property
    def where(self) -> str:
        """``host:port/database`` (no user, no password): for messages."""
        return self._where

    def __repr__(self) -> str:
        return f"ScheduleStore({self._where})"

    __str__ = __repr__

    # connections

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction (committed on exit, rolled back
        on an exception); connection failures raise ``SchedulerConnectionError``."""
        if not self._schema_ready:
            await self.ensure_schema()
        with self._mapped("a transaction"):
            async with self._connection() as conn, conn.transaction():
                yield conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; if the pool has none within the timeout (it is
        still backing off after an outage, or all are busy), a connection of
        its own, which raises the server's reason when it cannot connect."""
        pool = await self._pool()
        async with AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(pool.connection())
            except PoolTimeout:
                conn = await self._connect()
                stack.push_async_callback(conn.close)
            yield conn

    async def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent; safe from many processes at once).

        The schema's version is read first, without DDL: ``CREATE INDEX IF NOT
        EXISTS`` locks its table even when the index exists, which would
        deadlock with the transactions of processes already running."""
        with self._mapped("creating the schedule tables"):
            async with self._connection() as conn, conn.transaction():
                if await self._version(conn) == SCHEMA_VERSION:
                    self._schema_ready = True
                    return
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                found = await self._version(conn)  # another process may have just made it
                if found is None:
                    await conn.execute(DDL)
                    await conn.execute(
                        "INSERT INTO owlclaw_schema_version (component, version) VALUES (%s, %s)",
                        (COMPONENT, SCHEMA_VERSION),
                    )
                elif found > SCHEMA_VERSION:
                    raise SchedulerConnectionError(
                        f"the schedule tables in {self._where} have schema version {found}, "
                        f"newer than this owlclaw's ({SCHEMA_VERSION}): upgrade owlclaw-scheduler on "
                        "this host, or point it at another database"
                    )
        self._schema_ready = True

    async def _version(self, conn: Conn) -> int | None:
        """The schema version in the database (None: no schedule tables yet)."""
        # a scan of the catalog, not to_regclass: its cache can miss a table another
        # process has just committed, after we waited for it on the advisory lock
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'owlclaw_schema_version') AS present"
        )
        rec = await cur.fetchone()
        if rec is None or not rec["present"]:
            return None
        cur = await conn.execute(
            "SELECT version FROM owlclaw_schema_version WHERE component = %s", (COMPONENT,)
        )
        rec = await cur.fetchone()
        return None if rec is None else int(rec["version"])

    async def close(self) -> None:
        """Close the pool of the running event loop (each loop closes its own)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._pools.pop(loop, None)
        if entry is not None:
            await entry.pool.close()

    async def _pool(self) -> AsyncConnectionPool[Conn]:
        """The running loop's pool, opened once (callers that arrive while it
        opens wait for it; a failed open is forgotten, so the next call retries)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._pools.get(loop)
            if entry is None:
                pool = AsyncConnectionPool(
                    self._url,
                    connection_class=psycopg.AsyncConnection[DictRow],
                    kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": self._connect_s},
                    min_size=1,
                    max_size=self._max,
                    open=False,
                    configure=self._configure,
                    check=AsyncConnectionPool.check_connection,
                    timeout=self._timeout,
                    name=f"owlclaw-state-{self._where}",
                )
                opening = loop.create_task(self._open(loop, pool))
                opening.add_done_callback(_retrieve)  # a waiter cancelled meanwhile still reads it
                entry = _Entry(pool, opening)
                self._pools[loop] = entry
        if entry.opening is not None:
            await asyncio.shield(entry.opening)
        return entry.pool

    async def _open(self, loop: asyncio.AbstractEventLoop, pool: AsyncConnectionPool[Conn]) -> None:
        try:
            with self._mapped("connecting"):
                try:
                    await pool.open(wait=True, timeout=self._timeout)
                except PoolTimeout:
                    await self._probe()  # the pool only logs why; a plain connect raises it
                    raise
        except BaseException:
            with self._lock:
                self._pools.pop(loop, None)
            await pool.close()
            raise
        with self._lock:
            if (entry := self._pools.get(loop)) is not None:
                entry.opening = None

    async def _configure(self, conn: Conn) -> None:
        idle = max(60_000, 2 * self._lock_ms)
        await conn.execute(_SESSION.format(lock=self._lock_ms, idle=idle).encode())

    async def _probe(self) -> None:
        """Connect once outside the pool: raises the server's reason (bad password,
        no such database, refused), or returns if the server answers now."""
        await (await self._connect()).close()

    async def _connect(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, row_factory=dict_row, connect_timeout=self._connect_s
        )
        await self._configure(conn)
        return conn

    def _mapped(self, doing: str) -> _Mapped:
        return _Mapped(self, doing)

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "**********")
        return " ".join(text.replace(self._url, "<state_database_url>").split())  # libpq's: several lines

    # schedules

    async def now(self, conn: Conn) -> datetime:
        cur = await conn.execute("SELECT clock_timestamp() AS now")
        rec = await cur.fetchone()
        assert rec is not None
        now = as_utc(rec["now"])
        assert now is not None
        return now

    async def insert(
        self, conn: Conn, row: ScheduleRow, now: datetime, *, unless_exists: bool = False
    ) -> bool:
        """``unless_exists``: False if a row with that id exists (the primary key decides)."""
        cur = await conn.execute(
            f"INSERT INTO owlclaw_schedules (namespace, id, {_COLUMNS}, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            + (" ON CONFLICT (namespace, id) DO NOTHING" if unless_exists else ""),
            (row.namespace, row.id, *_values(row), now, now),
        )
        return cur.rowcount == 1

    async def save(self, conn: Conn, row: ScheduleRow, now: datetime) -> None:
        sets = ", ".join(f"{c.strip()} = %s" for c in _COLUMNS.split(","))
        await conn.execute(
            f"UPDATE owlclaw_schedules SET {sets}, updated_at = %s WHERE namespace = %s AND id = %s",
            (*_values(row), now, row.namespace, row.id),
        )

    async def lock(self, conn: Conn, namespace: str, schedule_id: str) -> ScheduleRow | None:
        """The row, locked ``FOR UPDATE`` until the transaction ends; None if absent."""
        cur = await conn.execute(
            "SELECT * FROM owlclaw_schedules WHERE namespace = %s AND id = %s FOR UPDATE",
            (namespace, schedule_id),
        )
        rec = await cur.fetchone()
        return None if rec is None else ScheduleRow.from_record(rec)

    async def fetch(self, conn: Conn, namespace: str, schedule_id: str) -> ScheduleRow | None:
        cur = await conn.execute(
            "SELECT * FROM owlclaw_schedules WHERE namespace = %s AND id = %s", (namespace, schedule_id)
        )
        rec = await cur.fetchone()
        return None if rec is None else ScheduleRow.from_record(rec)

    async def fetch_many(self, conn: Conn, namespace: str, ids: list[str]) -> dict[str, ScheduleRow]:
        cur = await conn.execute(
            "SELECT * FROM owlclaw_schedules WHERE namespace = %s AND id = ANY(%s)", (namespace, ids)
        )
        return {r.id: r for r in map(ScheduleRow.from_record, await cur.fetchall())}

    async def read(self, conn: Conn, namespace: str, task_name: str | None) -> list[ScheduleRow]:
        cur = await conn.execute(
            "SELECT * FROM owlclaw_schedules WHERE namespace = %s AND (%s::text IS NULL OR task_name = %s) "
            "ORDER BY created_at, id",
            (namespace, task_name, task_name),
        )
        return [ScheduleRow.from_record(rec) for rec in await cur.fetchall()]

    async def delete(self, conn: Conn, namespace: str, schedule_id: str) -> bool:
        cur = await conn.execute(
            "DELETE FROM owlclaw_schedules WHERE namespace = %s AND id = %s", (namespace, schedule_id)
        )
        # runs not known ended keep their rows (begin() still answers for them) until
        # they end (``forget``) or, never triggered, ``unstarted`` finds them orphaned
        await conn.execute(
            "DELETE FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s "
            "AND ended_at IS NOT NULL",
            (namespace, schedule_id),
        )
        return cur.rowcount > 0

    async def converted_at(
        self, conn: Conn, ns: str, task_name: str, cron: dict[str, str]
    ) -> datetime | None:
        """When the schedule made from this engine cron was made (``ScheduleRow.from_cron``)."""
        cur = await conn.execute(
            "SELECT min(created_at) AS made FROM owlclaw_schedules WHERE namespace = %s "
            f"AND task_name = %s AND spec -> '{FROM_CRON}' = %s",
            (ns, task_name, Jsonb(cron)),
        )
        rec = await cur.fetchone()
        return None if rec is None else as_utc(rec["made"])

    async def overdue(self, conn: Conn, namespace: str, before: datetime, limit: int) -> list[ScheduleRow]:
        """Unpaused schedules whose armed link is due before ``before``, or with a
        buffered occurrence, locked ``FOR UPDATE SKIP LOCKED`` (another sweeper
        holding one skips it)."""
        cur = await conn.execute(
            "SELECT * FROM owlclaw_schedules WHERE namespace = %s AND paused_at IS NULL "
            "AND (next_fire_at < %s OR buffered IS NOT NULL) "
            "ORDER BY next_fire_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (namespace, before, limit),
        )
        return [ScheduleRow.from_record(rec) for rec in await cur.fetchall()]


def _values(row: ScheduleRow) -> tuple[Any, ...]:
    spec = spec_to_json(row.spec)
    if row.from_cron is not None:
        spec[FROM_CRON] = row.from_cron
    return (
        row.task_name,
        Jsonb(spec),
        Jsonb(row.payload, dumps=_dumps),
        row.gen,
        row.handled_until,
        row.next_fire_at,
        row.paused_at,
        row.note,
        row.skips,
        row.buffered,
        row.fired,
        row.skipped,
        row.coalesced,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


_SESSION: Final = (
    "SET TIME ZONE 'UTC'; SET lock_timeout = '{lock}ms'; "
    # a process frozen inside a transaction must not hold schedule rows for ever
    "SET idle_in_transaction_session_timeout = '{idle}ms'"
)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass(eq=False)
class _Entry:
    pool: AsyncConnectionPool[Conn]
    opening: asyncio.Task[None] | None  # None once open


class _Mapped:
    """Maps psycopg's connection failures to ``SchedulerConnectionError``
    (a message without the URL; the cause is dropped: libpq's could carry it)."""

    def __init__(self, store: ScheduleStore, doing: str) -> None:
        self._store, self._doing = store, doing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if exc is None:
            return False
        store = self._store
        head = f"schedule state database {store.where}, {self._doing}"
        if isinstance(exc, PoolTimeout):
            message = f"{head}: no connection within {store._timeout:g} s"
        elif isinstance(exc, psycopg.errors.LockNotAvailable):
            message = (
                f"{head}: a schedule row stayed locked for {store._lock_ms / 1000:g} s by another "
                "transaction (a stuck process?); the call changed nothing, retry it"
            )
        elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
            message = (
                f"{head}: permission denied ({store._scrub(str(exc)).strip()}); the role needs "
                "CONNECT on the database and CREATE on its schema (see docs/schedules.md)"
            )
        elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and _is_connection(exc):
            message = f"{head}: {store._scrub(str(exc)).strip() or type(exc).__name__}"
        else:
            return False
        raise SchedulerConnectionError(f"{message}; check {SETTING}") from None


def _is_connection(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P", "53", "28", "3D"))
