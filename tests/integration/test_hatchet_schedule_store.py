"""The schedule state store (owlclaw/backends/hatchet/store.py) on a real
PostgreSQL (a private ``LocalPostgres``): its schema, its claims, its pools
and its errors. No engine."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from owlclaw.backends.hatchet.local.postgres import LocalPostgres, PostgresError, PostgresNotInstalledError
from owlclaw.backends.hatchet.local.processes import find_free_port
from owlclaw.backends.hatchet.rows import ScheduleRow
from owlclaw.backends.hatchet.store import SCHEMA_VERSION, ScheduleStore
from owlclaw.scheduler.errors import ConfigError, SchedulerConnectionError
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec

pytestmark = pytest.mark.integration

_TABLES = {"owlclaw_schema_version", "owlclaw_schedules", "owlclaw_occurrences"}


@pytest.fixture(scope="module")
def pg() -> Iterator[LocalPostgres]:
    try:
        server = LocalPostgres().start()
    except (PostgresNotInstalledError, PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the schedule store tests need PostgreSQL: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def _fresh_url(pg: LocalPostgres) -> str:
    return pg.database_url(f"state_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(pg: LocalPostgres) -> AsyncIterator[ScheduleStore]:
    s = ScheduleStore(_fresh_url(pg))
    try:
        yield s
    finally:
        await s.close()


async def _tables(store: ScheduleStore) -> set[str]:
    async with store.transaction() as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r["tablename"] for r in await cur.fetchall()}


async def test_the_schema_is_created_once_and_again_is_a_no_op(store: ScheduleStore) -> None:
    await store.ensure_schema()
    await store.ensure_schema()
    assert _TABLES <= await _tables(store)
    async with store.transaction() as conn:
        cur = await conn.execute("SELECT component, version FROM owlclaw_schema_version")
        assert [(r["component"], r["version"]) for r in await cur.fetchall()] == [
            ("schedules", SCHEMA_VERSION)
        ]


async def test_processes_starting_at_once_create_the_schema_without_failing(pg: LocalPostgres) -> None:
    # six stores, each its own pool and connection, create the schema of a fresh database at once
    url = _fresh_url(pg)
    stores = [ScheduleStore(url) for _ in range(6)]
    try:
        results = await asyncio.gather(*(s.ensure_schema() for s in stores), return_exceptions=True)
        assert [r for r in results if r is not None] == []
        assert _TABLES <= await _tables(stores[0])
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_newer_schema_is_refused_with_what_to_do(store: ScheduleStore) -> None:
    async with store.transaction() as conn:
        await conn.execute("UPDATE owlclaw_schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    newer = ScheduleStore(store._url)
    try:
        with pytest.raises(SchedulerConnectionError, match="newer than this owlclaw's") as err:
            await newer.ensure_schema()
        assert "upgrade owlclaw-scheduler" in str(err.value)
    finally:
        await newer.close()


def _row(namespace: str, sid: str, now: datetime) -> ScheduleRow:
    spec = ScheduleSpec(
        every=timedelta(seconds=90, microseconds=7),
        timezone="Europe/Paris",
        start=datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC),
        end=datetime(2027, 1, 1, tzinfo=UTC),
        jitter=2.5,
        overlap=Overlap.BUFFER_ONE,
        catchup_window=timedelta(hours=3, microseconds=1),
        coalesce=False,
    )
    return ScheduleRow(namespace, sid, "digest", spec, {"to": ["ops"], "n": 1.5}, now, note="x")


async def test_a_row_reads_back_with_every_field(store: ScheduleStore) -> None:
    async with store.transaction() as conn:
        now = await store.now(conn)
        row = _row("ns-a", "s1", now)
        row.skips, row.buffered, row.fired, row.skipped, row.coalesced = 3, now, 4, 5, 6
        await store.insert(conn, row, now)
    async with store.transaction() as conn:
        back = await store.lock(conn, "ns-a", "s1")
        assert await store.lock(conn, "ns-b", "s1") is None  # namespaces do not see each other
    assert back is not None
    for name in ScheduleRow.__slots__:
        assert getattr(back, name) == getattr(row, name), name
    assert back.handled_until.tzinfo is UTC


async def test_two_connections_claiming_one_occurrence_one_wins(store: ScheduleStore) -> None:
    nominal = datetime(2026, 5, 1, 12, tzinfo=UTC)
    gate = asyncio.Event()

    async def claim(holds: bool) -> bool:
        async with store.transaction() as conn:
            now = await store.now(conn)
            won = await store.claim(conn, "ns", "s", nominal, "test", now)
            if holds:
                gate.set()
                await asyncio.sleep(0.2)  # commit late: the other claim waits on the row lock
            return won

    async def late() -> bool:
        await gate.wait()
        return await claim(False)

    first, second = await asyncio.wait_for(asyncio.gather(claim(True), late()), 30)
    assert (first, second) == (True, False)
    # and many at once, on distinct connections, for 20 nominals: one winner each
    nominals = [nominal + timedelta(seconds=i) for i in range(20)]
    results = await asyncio.gather(*(_claim_once(store, t) for t in nominals for _ in range(3)))
    assert sum(results) == 20


async def _claim_once(store: ScheduleStore, nominal: datetime) -> bool:
    async with store.transaction() as conn:
        return await store.claim(conn, "ns", "race", nominal, "test", await store.now(conn))


def test_each_event_loop_gets_its_own_pool(pg: LocalPostgres) -> None:
    store = ScheduleStore(_fresh_url(pg))
    seen: list[object] = []

    async def work() -> None:
        async with store.transaction() as conn:
            seen.append(await store.now(conn))
        await store.close()

    threads = [threading.Thread(target=asyncio.run, args=(work(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 3, f"each of 3 threads (own loop) ran a transaction; got {seen}"


async def test_an_unreachable_database_names_the_setting_not_the_password() -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    port = find_free_port()
    store = ScheduleStore(f"postgresql://owlclaw:{secret}@127.0.0.1:{port}/owlclaw", connect_timeout=3)
    assert secret not in repr(store) and secret not in str(store)
    with pytest.raises(SchedulerConnectionError) as err:
        async with store.transaction():
            pass
    text = f"{err.value}\n{err.value!r}"
    assert secret not in text
    assert f"127.0.0.1:{port}/owlclaw" in text and "state_database_url" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    await store.close()


async def test_a_missing_database_is_a_connection_error_without_the_password(pg: LocalPostgres) -> None:
    secret = "pw-" + uuid.uuid4().hex
    url = f"postgresql://postgres:{secret}@127.0.0.1:{pg.port}/no_such_db?sslmode=disable"
    store = ScheduleStore(url, connect_timeout=5)
    with pytest.raises(SchedulerConnectionError, match="no_such_db") as err:
        await store.ensure_schema()
    assert secret not in str(err.value) and "OWLCLAW_STATE_DATABASE_URL" in str(err.value)
    await store.close()


def test_a_url_that_is_not_postgresql_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="state_database_url") as err:
        ScheduleStore("host=x password=abc123 port=notaport garbage")
    assert "abc123" not in str(err.value)


async def test_many_first_calls_at_once_share_one_opening_pool(pg: LocalPostgres) -> None:
    store = ScheduleStore(_fresh_url(pg))
    try:
        times = await asyncio.gather(*(_now(store) for _ in range(12)))
        assert len(times) == 12 and len(store._pools) == 1
    finally:
        await store.close()


async def _now(store: ScheduleStore) -> datetime:
    async with store.transaction() as conn:
        return await store.now(conn)


async def test_a_postgresql_restart_fails_calls_meanwhile_then_the_pool_recovers() -> None:
    # a private cluster: restarting the module's one would disturb the other tests
    try:
        server = LocalPostgres().start()
    except (PostgresNotInstalledError, PostgresError) as exc:
        pytest.skip(str(exc))
    store = ScheduleStore(server.database_url("owlclaw"), connect_timeout=3)
    try:
        before = await _now(store)
        server.restart()  # every pooled connection breaks
        after = await _now(store)  # the broken one is noticed on checkout and replaced
        assert after > before

        async def call() -> str:
            try:
                await _now(store)
            except SchedulerConnectionError as exc:
                return str(exc)
            return "ok"

        restart = asyncio.create_task(asyncio.to_thread(server.restart, 4.0))  # down for 4 s
        down = await poll_until(call, lambda r: r != "ok", timeout=30, interval=0.1, what="a call to fail")
        assert "state_database_url" in down and f"127.0.0.1:{server.port}/owlclaw" in down
        await asyncio.wait_for(restart, 90)
        assert await call() == "ok"
    finally:
        await store.close()
        server.stop()


async def test_doctor_reports_the_state_database(store: ScheduleStore) -> None:
    from owlclaw.backends.hatchet.doctor import state_database

    ok = await state_database(store)
    assert (ok.level, ok.detail) == ("ok", f"schedule state database {store.where}")
    secret = "pw-" + uuid.uuid4().hex
    down = ScheduleStore(f"postgresql://u:{secret}@127.0.0.1:{find_free_port()}/owlclaw", connect_timeout=2)
    bad = await state_database(down)
    await down.close()
    assert bad.level == "fail" and "state_database_url" in bad.detail + bad.fix
    assert secret not in f"{bad}"


async def test_a_process_starting_does_not_wait_on_the_work_of_running_ones(store: ScheduleStore) -> None:
    # a running process holds a schedule row and has claimed an occurrence (a link's
    # transaction, open); a process starting now must not take table locks (CREATE INDEX
    # IF NOT EXISTS would: it waited here, then deadlocked with the link's next UPDATE)
    async with store.transaction() as conn:
        now = await store.now(conn)
        await store.insert(conn, _row("ns", "busy", now), now)
    async with store.transaction() as conn:
        row = await store.lock(conn, "ns", "busy")
        assert row is not None
        assert await store.claim(conn, "ns", "busy", now, "test", now)
        starting = ScheduleStore(store._url)
        try:
            await asyncio.wait_for(starting.ensure_schema(), 10)
        finally:
            await starting.close()
        row.skips += 1
        await store.save(conn, row, now)


async def test_a_row_held_too_long_fails_the_waiting_call_with_what_to_do(store: ScheduleStore) -> None:
    async with store.transaction() as conn:
        now = await store.now(conn)
        await store.insert(conn, _row("ns", "held", now), now)
    impatient = ScheduleStore(store._url, lock_timeout=1.0)
    try:
        async with store.transaction() as conn:
            assert await store.lock(conn, "ns", "held") is not None  # held by a "stuck" process
            with pytest.raises(SchedulerConnectionError, match="stayed locked for 1 s"):
                async with impatient.transaction() as other:
                    await asyncio.wait_for(impatient.lock(other, "ns", "held"), 20)
        async with impatient.transaction() as other:  # released: the next call goes through
            assert await impatient.lock(other, "ns", "held") is not None
    finally:
        await impatient.close()
