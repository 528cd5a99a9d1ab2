"""The schedule state's rows as Python values: ``ScheduleRow`` (one schedule)
and a ``ScheduleSpec`` to and from JSON (every field, exactly: durations in
whole microseconds, instants as ISO 8601 UTC). SQL lives in ``store.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from owlclaw.scheduler.kit import copy_json
from owlclaw.scheduler.kit.schedule_calls import schedule_info
from owlclaw.scheduler.models import ScheduleInfo
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec

__all__ = ["FROM_CRON", "Begin", "ScheduleRow", "as_utc", "spec_from_json", "spec_to_json"]

#: the key of ``ScheduleRow.from_cron`` in the ``spec`` column (``spec_from_json`` ignores it)
FROM_CRON = "from_cron"

_MICRO = timedelta(microseconds=1)


class Begin(Enum):
    """What a run of a fired occurrence may do (``ScheduleBook.begin``)."""

    RUN = "run"  # the first run of the occurrence, or its retry: run the task
    DUPLICATE = "duplicate"  # another run has it (or it was never claimed): end without running
    SUPERSEDED = "superseded"  # overlap cancel_previous: a later occurrence fired first; cancel this run


def spec_to_json(spec: ScheduleSpec) -> dict[str, Any]:
    """Every ``ScheduleSpec`` field as JSON (the inverse of ``spec_from_json``)."""
    return {
        "cron": spec.cron,
        "every_us": None if spec.every is None else spec.every // _MICRO,
        "timezone": spec.timezone,
        "start": _iso(spec.start),
        "end": _iso(spec.end),
        "jitter": spec.jitter,
        "overlap": spec.overlap.value,
        "catchup_window_us": spec.catchup_window // _MICRO,
        "coalesce": spec.coalesce,
    }


def spec_from_json(data: dict[str, Any]) -> ScheduleSpec:
    every = data.get("every_us")
    return ScheduleSpec(
        cron=data.get("cron"),
        every=None if every is None else timedelta(microseconds=every),
        timezone=data["timezone"],
        start=_instant(data.get("start")),
        end=_instant(data.get("end")),
        jitter=float(data["jitter"]),
        overlap=Overlap(data["overlap"]),
        catchup_window=timedelta(microseconds=data["catchup_window_us"]),
        coalesce=bool(data["coalesce"]),
    )


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def as_utc(t: datetime | None) -> datetime | None:
    """A ``timestamptz`` read back, as an aware UTC datetime."""
    return None if t is None else t.astimezone(UTC)


@dataclass(eq=False, slots=True)
class ScheduleRow:
    """One row of ``owlclaw_schedules`` (memory's ``Schedule``, minus what the
    engine keeps: runs and links)."""

    namespace: str
    id: str
    task_name: str
    spec: ScheduleSpec
    payload: dict[str, Any]
    handled_until: datetime  # memory's ``last``: occurrences up to it are handled
    gen: int = 1  # +1 on every change that re-arms: links of an older gen are no-ops
    next_fire_at: datetime | None = None  # fire time of the armed link (None: paused or ended)
    paused_at: datetime | None = None
    note: str | None = None
    skips: int = 0
    buffered: datetime | None = None  # overlap buffer_one: the occurrence waiting
    fired: int = 0
    skipped: int = 0
    coalesced: int = 0
    #: a schedule converted from an engine cron: that cron's ``{name, expression}``
    #: (its straggling ticks are told apart by them); kept in the ``spec`` column
    from_cron: dict[str, str] | None = None

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ScheduleRow:
        handled = as_utc(rec["handled_until"])
        assert handled is not None
        return cls(
            namespace=rec["namespace"],
            id=rec["id"],
            task_name=rec["task_name"],
            spec=spec_from_json(rec["spec"]),
            payload=rec["payload"],
            handled_until=handled,
            gen=rec["gen"],
            next_fire_at=as_utc(rec["next_fire_at"]),
            paused_at=as_utc(rec["paused_at"]),
            note=rec["note"],
            skips=rec["skips"],
            buffered=as_utc(rec["buffered"]),
            fired=rec["fired"],
            skipped=rec["skipped"],
            coalesced=rec["coalesced"],
            from_cron=rec["spec"].get(FROM_CRON),
        )

    def info(self, next_run_at: datetime | None) -> ScheduleInfo:
        return schedule_info(
            self.spec,
            id=self.id,
            task_name=self.task_name,
            payload=copy_json(self.payload),
            next_run_at=next_run_at,
            paused=self.paused_at is not None,
            note=self.note,
            skips_pending=self.skips,
            fired=self.fired,
            skipped=self.skipped,
            coalesced=self.coalesced,
        )
