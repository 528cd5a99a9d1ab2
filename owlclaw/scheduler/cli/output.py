"""What the CLI prints: tables for people, JSON for scripts, and the parsers
of its time arguments."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from owlclaw.scheduler.errors import InvalidScheduleError, PayloadError
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskInfo

__all__ = ["cron_row", "emit", "parse_at", "parse_duration", "parse_payload", "schedule_row", "task_row"]

_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*"
_DURATION = re.compile(rf"\s*(?:{_DURATION_PART})+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` or ``1h30m`` -> seconds (> 0).

    :raises InvalidScheduleError: not a positive duration.
    """
    if not _DURATION.fullmatch(text):
        raise InvalidScheduleError(f"--in {text!r} is not a duration; write e.g. 90s, 10m, 2h, 1d or 1h30m")
    total = sum(float(n) * _UNIT_SECONDS[unit or "s"] for n, unit in re.findall(_DURATION_PART, text))
    if total <= 0:
        raise InvalidScheduleError(f"--in {text!r} must be more than zero; to run now use `run`")
    return total


def parse_at(text: str, option: str = "--at") -> datetime:
    """An ISO 8601 time with a timezone (``Z`` or ``+02:00``).

    :raises InvalidScheduleError: not ISO 8601, or no timezone.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidScheduleError(
            f"{option} {text!r} is not an ISO 8601 time; write e.g. 2026-11-26T09:00:00Z"
        ) from None
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidScheduleError(
            f"{option} {text!r} has no timezone; add Z for UTC or an offset like +01:00"
        )
    return value


def parse_payload(text: str | None) -> Any:
    """``--payload`` is a JSON object; absent means ``{}``."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"--payload is not valid JSON ({exc.msg} at column {exc.colno}); "
            'write e.g. --payload \'{"agent_id": "a1"}\''
        ) from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def task_row(info: TaskInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "task": info.task_name,
        "state": str(info.state),
        "scheduled_at": _iso(info.scheduled_at),
        "started_at": _iso(info.started_at),
        "finished_at": _iso(info.finished_at),
        "attempts": info.attempts,
        "payload": info.payload,
        "result": info.result,
        "error": info.error,
    }


def cron_row(info: CronInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "task": info.task_name,
        "expression": info.expression,
        "payload": info.payload,
        "next_run_at": _iso(info.next_run_at),
        "timezone": info.timezone,
        "paused": info.paused,
    }


def schedule_row(info: ScheduleInfo) -> dict[str, Any]:
    rule = info.expression if info.expression is not None else f"every {info.every}"
    return {
        "id": info.id,
        "task": info.task_name,
        "rule": rule,
        "timezone": info.timezone,
        "next_run_at": _iso(info.next_run_at),
        "paused": info.paused,
        "note": info.note,
        "payload": info.payload,
        "start": _iso(info.start),
        "end": _iso(info.end),
        "jitter": info.jitter,
        "overlap": str(info.overlap),
        "catchup_window_seconds": info.catchup_window.total_seconds(),
        "coalesce": info.coalesce,
        "skips_pending": info.skips_pending,
        "fired": info.fired,
        "skipped": info.skipped,
        "coalesced": info.coalesced,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def emit(
    data: Any,
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    out: TextIO | None = None,
) -> None:
    """JSON (one document) or, for people, a table of ``columns`` or ``key: value`` lines."""
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if isinstance(data, Mapping):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            out.write(f"{str(key) + ':':<{width + 1}} {_cell(value)}\n")
        return
    rows = list(data)
    if not rows:
        out.write("(none)\n")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")
