"""The schedule methods of ``BaseScheduler`` (a part of it, which provides what
is declared here): each checks its arguments the same way on every backend,
then calls one hook (see ``kit.base``); a backend without schedules
(``capabilities.schedules`` False) raises ``NotSupportedError``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from owlclaw.scheduler.errors import InvalidScheduleError, NotSupportedError, TaskNotFoundError
from owlclaw.scheduler.kit.payloads import check_payload
from owlclaw.scheduler.limits import check_limit
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskOptions
from owlclaw.scheduler.observability import traced_call
from owlclaw.scheduler.protocol import Capabilities
from owlclaw.scheduler.schedules import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_COALESCE,
    DEFAULT_OVERLAP,
    Overlap,
    ScheduleSpec,
)
from owlclaw.scheduler.schedules.occurrences import utc

__all__ = ["MAX_NOTE_CHARS", "ScheduleCalls", "schedule_info"]

MAX_NOTE_CHARS = 1000  # a pause note says who and why, not a log
_UPDATABLE = frozenset("payload cron every timezone start end jitter overlap catchup_window coalesce".split())


def schedule_info(spec: ScheduleSpec, **fields: Any) -> ScheduleInfo:
    """A ``ScheduleInfo`` whose rule fields come from ``spec``; ``fields`` give
    the rest (id, task_name, payload, next_run_at, pause and counters)."""
    return ScheduleInfo(
        expression=spec.cron,
        every=spec.every,
        timezone=spec.timezone,
        start=spec.start,
        end=spec.end,
        jitter=spec.jitter,
        overlap=spec.overlap,
        catchup_window=spec.catchup_window,
        coalesce=spec.coalesce,
        **fields,
    )


class ScheduleCalls:
    """``add_schedule`` and the other schedule calls, with their hooks' defaults."""

    backend_name: str

    @property
    def capabilities(self) -> Capabilities:
        raise NotImplementedError

    def _enter(self, operation: str) -> None:
        raise NotImplementedError

    def _options(self, task_name: str) -> TaskOptions:
        raise NotImplementedError

    def _now(self) -> datetime:
        raise NotImplementedError

    async def _remove_cron(self, cron_id: str) -> None:
        raise NotImplementedError

    async def _list_crons(self, task_name: str | None) -> list[CronInfo]:
        raise NotImplementedError

    @traced_call("add_schedule")
    async def add_schedule(
        self,
        task_name: str,
        payload: Any = None,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str = "UTC",
        start: datetime | None = None,
        end: datetime | None = None,
        jitter: float = 0.0,
        overlap: Overlap | str = DEFAULT_OVERLAP,
        catchup_window: timedelta | float = DEFAULT_CATCHUP_WINDOW,
        coalesce: bool = DEFAULT_COALESCE,
    ) -> str:
        self._enter("add_schedule")
        spec = ScheduleSpec(
            cron=cron,
            every=every,
            timezone=timezone,
            start=start,
            end=end,
            jitter=jitter,
            overlap=overlap,  # type: ignore[arg-type]  # a str is checked by ScheduleSpec
            catchup_window=catchup_window,  # type: ignore[arg-type]  # seconds too, converted there
            coalesce=coalesce,
        )
        options = self._options(task_name)
        data = check_payload(payload)
        if not self.capabilities.schedules:
            raise self._unsupported("add_schedule()", "use add_cron with a UTC expression")
        return await self._add_schedule(options, spec, data)

    async def list_schedules(self, task_name: str | None = None) -> list[ScheduleInfo]:
        self._enter("list_schedules")
        return await self._list_schedules(task_name)

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        self._enter("get_schedule")
        return await self._get_schedule(schedule_id)

    async def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        self._enter("update_schedule")
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown or not changes:
            raise TypeError(
                f"update_schedule() takes {', '.join(sorted(_UPDATABLE))}; "
                + (f"got {', '.join(unknown)}" if unknown else "got nothing to change")
            )
        if "payload" in changes:
            changes["payload"] = check_payload(changes["payload"])
        self._need_schedules("update_schedule()")
        await self._update_schedule(schedule_id, changes)

    async def remove_schedule(self, schedule_id: str) -> None:
        self._enter("remove_schedule")
        await self._remove_schedule(schedule_id)

    async def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        self._enter("pause_schedule")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
            raise InvalidScheduleError(
                f"note must be a string of at most {MAX_NOTE_CHARS} characters saying who paused and "
                f"why (e.g. 'ops: provider outage'), got {_short(note)}"
            )
        self._need_schedules("pause_schedule()")
        await self._pause_schedule(schedule_id, note)

    async def resume_schedule(self, schedule_id: str) -> None:
        self._enter("resume_schedule")
        self._need_schedules("resume_schedule()")
        await self._resume_schedule(schedule_id)

    async def skip_schedule(self, schedule_id: str, count: int = 1) -> None:
        self._enter("skip_schedule")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidScheduleError(
                f"count must be an int >= 1 (occurrences to skip), got {count!r}; "
                "to undo skips, resume_schedule does not help: remove and add the schedule"
            )
        self._need_schedules("skip_schedule()")
        await self._skip_schedule(schedule_id, count)

    async def preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> list[datetime]:
        self._enter("preview_schedule")
        start, end = _window("preview_schedule", start, end)
        limit = check_limit(limit)
        self._need_schedules("preview_schedule()")
        return await self._preview_schedule(schedule_id, start, end, limit)

    @traced_call("backfill_schedule")
    async def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        self._enter("backfill_schedule")
        start, end = _window("backfill_schedule", start, end)
        now = self._now()
        if end > now:
            raise InvalidScheduleError(
                f"backfill_schedule end {end.isoformat()} is in the future (now {now.isoformat()}): "
                "a backfill fires past occurrences; give an end up to now, and let the "
                "schedule fire the later ones itself"
            )
        self._need_schedules("backfill_schedule()")
        return await self._backfill_schedule(schedule_id, start, end)

    def _need_schedules(self, method: str) -> None:
        if not self.capabilities.schedules:
            raise self._unsupported(method, "")

    def _unsupported(self, method: str, hint: str) -> NotSupportedError:
        return NotSupportedError(
            f"{method} is not supported by the {self.backend_name} backend: it keeps no schedules "
            f"(capabilities.schedules is False)" + (f"; {hint}" if hint else "")
        )

    # hooks a backend with schedules implements

    async def _add_schedule(self, options: TaskOptions, spec: ScheduleSpec, payload: dict[str, Any]) -> str:
        """Create a schedule (``spec`` is validated) and return its id."""
        raise self._unsupported("add_schedule()", "")

    async def _list_schedules(self, task_name: str | None) -> list[ScheduleInfo]:
        """The schedules, of ``task_name`` only if given: by default the crons."""
        return await self._list_crons(task_name)

    async def _get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """One schedule; ``TaskNotFoundError`` for an unknown id."""
        for info in await self._list_schedules(None):
            if info.id == schedule_id:
                return info
        raise TaskNotFoundError(f"no schedule with id {schedule_id!r}; list them with list_schedules()")

    async def _remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; by default a cron (``_remove_cron``)."""
        await self._remove_cron(schedule_id)

    async def _update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> None:
        """Apply ``changes`` (checked names; ``payload`` checked JSON)."""
        raise self._unsupported("update_schedule()", "")

    async def _pause_schedule(self, schedule_id: str, note: str | None) -> None:
        raise self._unsupported("pause_schedule()", "")

    async def _resume_schedule(self, schedule_id: str) -> None:
        raise self._unsupported("resume_schedule()", "")

    async def _skip_schedule(self, schedule_id: str, count: int) -> None:
        raise self._unsupported("skip_schedule()", "")

    async def _preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, limit: int
    ) -> list[datetime]:
        raise self._unsupported("preview_schedule()", "")

    async def _backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        raise self._unsupported("backfill_schedule()", "")


def _window(method: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = utc("start", start), utc("end", end)
    if end <= start:
        raise InvalidScheduleError(
            f"{method}: end {end.isoformat()} is not after start {start.isoformat()}; give start < end"
        )
    return start, end


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
