"""The SQL of ``owlclaw_occurrences``: one row per fired occurrence of a
schedule (its claim, its run, whether a run began it and whether it ended).
``ScheduleStore`` has these methods; each runs on the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg
from psycopg.rows import DictRow

from owlclaw.backends.hatchet.rows import Begin, as_utc

__all__ = ["Claims", "Conn"]

Conn = psycopg.AsyncConnection[DictRow]


class Claims:
    """The occurrence rows' queries (a base of ``ScheduleStore``)."""

    async def claim(
        self, conn: Conn, namespace: str, schedule_id: str, nominal: datetime, by: str, now: datetime
    ) -> bool:
        """Record an occurrence as fired; False if it was already (at most once)."""
        cur = await conn.execute(
            "INSERT INTO owlclaw_occurrences (namespace, schedule_id, nominal, claimed_by, claimed_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, schedule_id, nominal) DO NOTHING",
            (namespace, schedule_id, nominal, by, now),
        )
        return cur.rowcount == 1

    async def fired_among(
        self, conn: Conn, namespace: str, schedule_id: str, nominals: Iterable[datetime]
    ) -> set[datetime]:
        cur = await conn.execute(
            "SELECT nominal FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s "
            "AND nominal = ANY(%s)",
            (namespace, schedule_id, list(nominals)),
        )
        return {t for rec in await cur.fetchall() if (t := as_utc(rec["nominal"])) is not None}

    async def unended(
        self, conn: Conn, namespace: str, schedule_id: str, limit: int = 1000
    ) -> list[tuple[datetime, str | None]]:
        """(nominal, run id) of this schedule's fired occurrences not known final, newest first."""
        cur = await conn.execute(
            "SELECT nominal, run_id FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s "
            "AND ended_at IS NULL ORDER BY nominal DESC LIMIT %s",
            (namespace, schedule_id, limit),
        )
        return [(as_utc(r["nominal"]), r["run_id"]) for r in await cur.fetchall()]  # type: ignore[misc]

    async def mark_ended(
        self, conn: Conn, namespace: str, schedule_id: str, nominals: list[datetime], now: datetime
    ) -> list[str]:
        """Mark these occurrences ended; the run ids recorded on them (read under
        the row locks: a trigger recorded since the caller read them is included)."""
        cur = await conn.execute(
            "UPDATE owlclaw_occurrences SET ended_at = %s WHERE namespace = %s AND schedule_id = %s "
            "AND nominal = ANY(%s) AND ended_at IS NULL RETURNING run_id",
            (now, namespace, schedule_id, nominals),
        )
        return [r["run_id"] for r in await cur.fetchall() if r["run_id"] is not None]

    async def forget(self, conn: Conn, namespace: str, occurrences: list[tuple[str, datetime]]) -> None:
        """Delete occurrence rows (of schedules that were removed)."""
        for schedule_id, nominal in occurrences:
            await conn.execute(
                "DELETE FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s AND nominal = %s",
                (namespace, schedule_id, nominal),
            )

    async def triggered(
        self, conn: Conn, namespace: str, schedule_id: str, nominal: datetime, run_id: str, now: datetime
    ) -> bool:
        """Record the run of an occurrence; True if it was marked ended before its
        run began (overlap ``cancel_previous``: a later occurrence superseded it).
        The run may begin before this record (seen on the engine): ``began_at``
        after ``ended_at`` still says superseded; a run that ended has it before."""
        cur = await conn.execute(
            "UPDATE owlclaw_occurrences SET run_id = %s, triggered_at = %s "
            "WHERE namespace = %s AND schedule_id = %s AND nominal = %s "
            "RETURNING ended_at IS NOT NULL AND (began_at IS NULL OR ended_at < began_at) AS superseded",
            (run_id, now, namespace, schedule_id, nominal),
        )
        found = await cur.fetchone()
        return bool(found is not None and found["superseded"])

    async def begin(
        self, conn: Conn, namespace: str, schedule_id: str, nominal: datetime, run_key: str, now: datetime
    ) -> Begin:
        """The first ``run_key`` to begin an occurrence owns it (and its retries).
        With overlap ``cancel_previous``, an occurrence marked ended before any
        run began was superseded by a later one: none may begin it."""
        key = (namespace, schedule_id, nominal)
        cur = await conn.execute(
            "UPDATE owlclaw_occurrences o SET began_by = %s, began_at = coalesce(began_at, %s) "
            "WHERE namespace = %s AND schedule_id = %s AND nominal = %s AND (began_by = %s OR "
            "(began_by IS NULL AND (ended_at IS NULL OR NOT EXISTS (SELECT 1 FROM owlclaw_schedules s "
            "WHERE s.namespace = o.namespace AND s.id = o.schedule_id "
            "AND s.spec->>'overlap' = 'cancel_previous'))))",
            (run_key, now, *key, run_key),
        )
        if cur.rowcount == 1:
            return Begin.RUN
        cur = await conn.execute(
            "SELECT began_by IS NULL AS superseded FROM owlclaw_occurrences "
            "WHERE namespace = %s AND schedule_id = %s AND nominal = %s",
            key,
        )
        found = await cur.fetchone()
        return Begin.SUPERSEDED if found is not None and found["superseded"] else Begin.DUPLICATE

    async def unstarted(
        self, conn: Conn, namespace: str, before: datetime, now: datetime, limit: int
    ) -> list[tuple[str, datetime]]:
        """Claimed occurrences with no run recorded, claimed (or last offered)
        before ``before``: marked offered at ``now``, so each is handed out once
        per period, to one caller."""
        cur = await conn.execute(
            "UPDATE owlclaw_occurrences o SET offered_at = %s FROM ("
            " SELECT namespace, schedule_id, nominal FROM owlclaw_occurrences"
            " WHERE namespace = %s AND run_id IS NULL AND coalesce(offered_at, claimed_at) < %s"
            " ORDER BY claimed_at LIMIT %s FOR UPDATE SKIP LOCKED) d "
            "WHERE (o.namespace, o.schedule_id, o.nominal) = (d.namespace, d.schedule_id, d.nominal) "
            "RETURNING o.schedule_id, o.nominal",
            (now, namespace, before, limit),
        )
        return [(r["schedule_id"], as_utc(r["nominal"])) for r in await cur.fetchall()]  # type: ignore[misc]

    async def prune(self, conn: Conn, namespace: str, schedule_id: str, keep: int) -> None:
        """Keep the newest ``keep`` occurrence rows of a schedule."""
        await conn.execute(
            "DELETE FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s AND nominal < ("
            " SELECT nominal FROM owlclaw_occurrences WHERE namespace = %s AND schedule_id = %s"
            " ORDER BY nominal DESC OFFSET %s LIMIT 1)",
            (namespace, schedule_id, namespace, schedule_id, keep - 1),
        )
