"""``HatchetScheduler``'s schedule hooks (a part of it): each asks the
``ScheduleBook`` (``gate.py``, state in the application's PostgreSQL), then
has ``Chain`` do on the engine what the book returned (``chain.py``).

Schedules need ``scheduler.hatchet.state_database_url``; without it the
backend keeps today's behaviour: UTC ``add_cron`` as engine crons, and every
other schedule call raises ``NotSupportedError`` naming that setting.
A plain UTC ``add_cron`` (and ``@task(cron=...)`` in UTC) stays an engine
cron with it too, its id the engine's; ``remove_schedule``/``list_schedules``/
``get_schedule`` reach it. Pausing, resuming, skipping, previewing,
backfilling or updating it first makes it a schedule with the same id
(overlap ``allow_all``, occurrences after the call's instant; the engine cron
deleted), as on memory: ``convert.py``, which also says how a tick of the old
cron that still reaches a worker is kept from running twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from owlclaw.backends.hatchet.chain import Chain
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.convert import convert
from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.store import SETTING
from owlclaw.scheduler.errors import NotSupportedError, TaskNotFoundError
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskOptions
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec

if TYPE_CHECKING:
    from owlclaw.backends.hatchet.gate import ScheduleBook

__all__ = ["ScheduleHooks"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

_T = TypeVar("_T")


class ScheduleHooks:
    """``BaseScheduler``'s schedule hooks for ``HatchetScheduler``."""

    config: HatchetConfig
    backend_name: str
    _lookups: Lookups
    _chain: Chain | None

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        raise NotImplementedError

    async def _remove_cron(self, cron_id: str) -> None:
        raise NotImplementedError

    @property
    def schedule_chain(self) -> Chain | None:
        """The engine side of schedules; None without a state database."""
        return self._chain

    def _unsupported(self, method: str, hint: str) -> NotSupportedError:
        return NotSupportedError(
            f"{method} is not supported by the hatchet backend without a state database: schedules "
            f"keep their state in PostgreSQL; set {SETTING} to the application's database "
            "(deploy/init-db.sql makes it)" + (f", or {hint}" if hint else "")
        )

    async def _book_and_chain(self, method: str) -> tuple[ScheduleBook, Chain]:
        if self._chain is None:
            raise self._unsupported(method, "")
        return self._chain.book, self._chain

    async def _add_schedule(self, options: TaskOptions, spec: ScheduleSpec, payload: dict[str, Any]) -> str:
        book, chain = await self._book_and_chain("add_schedule()")
        schedule_id, effects = await book.add(options.name, spec, payload)
        await chain.execute(effects)
        return schedule_id

    async def _list_schedules(self, task_name: str | None) -> list[ScheduleInfo]:
        found = await self._list_crons(task_name)
        if self._chain is not None:
            schedules = await self._chain.book.list(task_name)
            # an engine cron made a schedule, not deleted yet: shown once, as the schedule
            ids = {s.id for s in schedules}
            found = [c for c in found if c.id not in ids] + schedules
        return found

    async def _get_schedule(self, schedule_id: str) -> ScheduleInfo:
        if self._chain is not None:
            try:
                return await self._chain.book.get(schedule_id)
            except TaskNotFoundError:
                pass  # an engine cron's id, maybe
        for info in await self._list_crons(None):
            if info.id == schedule_id:
                return info
        raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")

    async def _remove_schedule(self, schedule_id: str) -> None:
        if self._chain is not None:
            removed, effects = await self._chain.book.remove(schedule_id)
            await self._chain.execute(effects)
            if removed:
                # an engine cron made this schedule, its delete failed: it goes too
                if any(c.id == schedule_id for c in await self._list_crons(None)):
                    await self._remove_cron(schedule_id)
                return
        await self._remove_cron(schedule_id)

    async def _on_schedule(
        self, method: str, schedule_id: str, call: Callable[[ScheduleBook, Chain], Awaitable[_T]]
    ) -> _T:
        """``call`` on the schedule ``schedule_id``; on an engine cron's id, the
        cron is made a schedule with that id first (``convert.py``)."""
        book, chain = await self._book_and_chain(method)
        try:
            return await call(book, chain)
        except TaskNotFoundError:
            conversion = await convert(self._lookups, chain, schedule_id)
            if conversion is None:
                raise
        try:
            return await call(book, chain)
        finally:
            await conversion.finish()

    async def _update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> None:
        async def call(book: ScheduleBook, chain: Chain) -> None:
            await chain.execute(await book.update(schedule_id, changes))

        await self._on_schedule("update_schedule()", schedule_id, call)

    async def _pause_schedule(self, schedule_id: str, note: str | None) -> None:
        async def call(book: ScheduleBook, chain: Chain) -> None:
            await chain.execute(await book.pause(schedule_id, note))

        await self._on_schedule("pause_schedule()", schedule_id, call)

    async def _resume_schedule(self, schedule_id: str) -> None:
        async def call(book: ScheduleBook, chain: Chain) -> None:
            await chain.execute(await book.resume(schedule_id))

        await self._on_schedule("resume_schedule()", schedule_id, call)

    async def _skip_schedule(self, schedule_id: str, count: int) -> None:
        async def call(book: ScheduleBook, chain: Chain) -> None:
            await book.skip(schedule_id, count)

        await self._on_schedule("skip_schedule()", schedule_id, call)

    async def _preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, limit: int
    ) -> list[datetime]:
        async def call(book: ScheduleBook, chain: Chain) -> list[datetime]:
            return await book.preview(schedule_id, start, end, limit)

        return await self._on_schedule("preview_schedule()", schedule_id, call)

    async def _backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        async def call(book: ScheduleBook, chain: Chain) -> list[str]:
            return await chain.execute(await book.backfill(schedule_id, start, end, chain.active))

        return await self._on_schedule("backfill_schedule()", schedule_id, call)

    async def _declare_zoned_crons(self, tasks: dict[str, TaskOptions]) -> None:
        """``@task(cron=..., timezone=...)`` in a zone other than UTC: one
        schedule per declaration (overlap allow_all, as crons fire), added
        unless a schedule of that task with that cron, zone and no payload exists."""
        if self._chain is None:
            return
        book = self._chain.book
        for options in tasks.values():
            if options.cron is None or options.timezone == "UTC":
                continue
            existing = await book.list(options.name)
            if any(
                s.expression == options.cron and s.timezone == options.timezone and not s.payload
                for s in existing
            ):
                continue
            spec = ScheduleSpec(cron=options.cron, timezone=options.timezone, overlap=Overlap.ALLOW_ALL)
            schedule_id, effects = await book.add(options.name, spec, {})
            await self._chain.execute(effects)
            log.info(
                "declared cron of task %s in %s is schedule %s", options.name, options.timezone, schedule_id
            )
