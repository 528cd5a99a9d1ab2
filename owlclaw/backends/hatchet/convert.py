"""An engine cron (``add_cron`` without a zone, ``@task(cron=...)`` in UTC)
turned into a schedule with the same id when a schedule call asks more of it
than a cron does (pause, resume, skip, preview, backfill, update), as the
memory backend does (``owlclaw/backends/memory/schedules.py``).

- ``convert``: the schedule row is inserted with the cron's id (the primary
  key decides between two clients converting at once), its first link armed;
  the caller then applies its call, and ``Conversion.finish`` deletes the
  engine cron once the ticks up to the conversion are surely created
  (``CRON_SETTLE`` after it).
- The schedule fires the occurrences after its creation time; the cron's ticks
  up to it are the cron's. A tick of the cron that still reaches a worker
  (created before the delete, or the delete failed) is told apart by the
  metadata the engine gives cron runs (its name, expression and nominal
  time): ``tick_covered`` says whether the schedule decides its occurrence,
  and then the worker runs no user code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from owlclaw.scheduler.errors import NotSupportedError, SchedulerError
from owlclaw.scheduler.kit import json_roundtrip
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec

if TYPE_CHECKING:
    from owlclaw.backends.hatchet.chain import Chain
    from owlclaw.backends.hatchet.lookups import Lookups

__all__ = [
    "CRON_AT_KEY",
    "CRON_EXPRESSION_KEY",
    "CRON_NAME_KEY",
    "CRON_SETTLE",
    "Conversion",
    "convert",
    "cron_tick",
    "tick_covered",
]

log = logging.getLogger("owlclaw.scheduler.hatchet")

#: the metadata the engine gives each run a cron created (engine v0.105.0)
CRON_NAME_KEY = "hatchet__cron_name"
CRON_EXPRESSION_KEY = "hatchet__cron_expression"
CRON_AT_KEY = "hatchet__cron_scheduled_at"
#: how long after a conversion the engine cron is deleted: its ticks up to the
#: conversion are created by then (docs/hatchet.md, "Crons turned into schedules")
CRON_SETTLE = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A conversion this client made (``made``) or found made by another."""

    chain: Chain
    lookups: Lookups
    cron_id: str
    made: datetime | None  # the schedule's creation time (database clock); None: another client's

    async def finish(self) -> None:
        """Delete the engine cron, once its ticks up to the conversion exist (best effort:
        a tick it still creates is a straggler the worker skips)."""
        if self.made is None:
            return  # the client that made it deletes it
        try:
            wait = (self.made + CRON_SETTLE - await self.chain.book.now()).total_seconds()
        except SchedulerError:  # the database's clock unreadable: the whole settle time
            wait = CRON_SETTLE.total_seconds()
        if wait > 0:
            await asyncio.sleep(min(wait, CRON_SETTLE.total_seconds()))
        conn = self.lookups.conn
        try:
            with conn.sdk(f"delete cron {self.cron_id} (now a schedule)"):
                await conn.require().cron.aio_delete(self.cron_id)
        except SchedulerError as exc:
            log.warning(
                "engine cron %s not deleted after it became a schedule: %s (its ticks run no task code; "
                "remove_schedule deletes it)",
                self.cron_id,
                exc,
            )


async def convert(lookups: Lookups, chain: Chain, cron_id: str) -> Conversion | None:
    """Make the engine cron ``cron_id`` a schedule with the same id (overlap
    ``allow_all``, as crons fire); None if this namespace has no such cron."""
    found = await _find(lookups, cron_id)
    if found is None:
        return None
    task_name, name, expression, payload = found
    try:
        spec = ScheduleSpec(cron=expression, overlap=Overlap.ALLOW_ALL)
    except SchedulerError as exc:
        raise NotSupportedError(
            f"cron {cron_id!r} ({expression!r}) cannot become a schedule: {exc}; remove it "
            "(remove_cron) and add a schedule with add_schedule(cron=...)"
        ) from None
    from_cron = {"name": name, "expression": expression}
    made, effects = await chain.book.convert(cron_id, task_name, spec, payload, from_cron)
    if made is not None:
        await chain.execute(effects)
        log.info("engine cron %s of task %s is now a schedule with that id", cron_id, task_name)
    return Conversion(chain, lookups, cron_id, made)


async def _find(lookups: Lookups, cron_id: str) -> tuple[str, str, str, dict[str, Any]] | None:
    """(task name, cron name, expression, input) of this namespace's engine cron ``cron_id``."""
    conn = lookups.conn
    with conn.sdk("list crons"):
        rows = (await conn.require().cron.aio_list(limit=1000)).rows or []
    for row in rows:
        name = conn.names.strip(row.workflow_name)
        if name is not None and str(row.metadata.id) == cron_id:
            return name, str(row.name), str(row.cron), json_roundtrip(dict(row.input or {}), "payload")
    return None


def cron_tick(metadata: dict[str, Any]) -> tuple[dict[str, str], datetime] | None:
    """The engine cron (``{name, expression}``) and nominal time of a run a
    cron created; None for any other run (or metadata not understood)."""
    name, expression, at = (metadata.get(k) for k in (CRON_NAME_KEY, CRON_EXPRESSION_KEY, CRON_AT_KEY))
    if not (isinstance(name, str) and isinstance(expression, str) and isinstance(at, str)):
        return None
    nominal = _instant(at)
    if nominal is None:
        log.warning("cron run with a nominal time not understood: %s=%r", CRON_AT_KEY, at)
        return None
    return {"name": name, "expression": expression}, nominal


def _instant(text: str) -> datetime | None:
    """An RFC 3339 instant, as the engine writes it ("2026-11-30T16:28:34Z"); None if not one."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo is not None else None


async def tick_covered(chain: Chain, task_name: str, metadata: dict[str, Any]) -> str | None:
    """For a run an engine cron created: a description of its occurrence if a
    schedule converted from that cron decides it (the run must not run user
    code), else None. The check failing (the state database unreachable):
    None, logged: the cron's run goes on, as without schedules."""
    tick = cron_tick(metadata)
    if tick is None:
        return None
    from_cron, nominal = tick
    try:
        made = await chain.book.converted(task_name, from_cron)
    except Exception as exc:  # noqa: BLE001 - the cron's run goes on, as it would without schedules
        log.warning(
            "cron run of %s not checked against its schedule: %s: %s (it runs)",
            task_name,
            type(exc).__name__,
            exc,
        )
        return None
    # made before the tick's nominal time: the schedule decides that occurrence
    return f"{from_cron['name']}@{nominal.isoformat()}" if made is not None and nominal > made else None
