"""The JSON rules every backend applies: what a payload, a result and a due
time may be, and a run's priority.

The engine carries payloads and results as JSON, so every backend checks them
the same way before they leave the caller: a value the engine would refuse
raises ``PayloadError`` at the call, not later in a worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from owlclaw.scheduler.errors import InvalidScheduleError, PayloadError
from owlclaw.scheduler.limits import MAX_DELAY_SECONDS, check_json_depth
from owlclaw.scheduler.models import TaskOptions

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_RESULT_BYTES",
    "check_payload",
    "copy_json",
    "dump_json",
    "json_roundtrip",
    "resolve_due_time",
    "run_priority",
]

#: Largest payload, as compact UTF-8 JSON: well under the 4 MiB gRPC message
#: limit of Hatchet's SDK and engine, so every backend refuses the same ones.
MAX_PAYLOAD_BYTES = 1024 * 1024

#: Largest result of a task, as compact UTF-8 JSON: the same limit, kept by the
#: attempt on every backend (Hatchet would take up to its 4 MiB gRPC message;
#: the memory backend had no limit), so a result too big for one fails on all.
MAX_RESULT_BYTES = MAX_PAYLOAD_BYTES


_MODEL_HINT = 'for a pydantic model pass model.model_dump(mode="json")'


def dump_json(value: Any, what: str) -> str:
    """Serialize as the engine would, or raise PayloadError naming ``what``."""
    check_json_depth(value, what)
    return _encode(value, what)


def _encode(value: Any, what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"{what} is not JSON-serializable ({exc}); use dicts, lists, str, "
            "int, float (finite), bool and None, e.g. datetime.isoformat() for times"
        ) from exc


def _refuse(value: Any) -> Any:
    """``json.dumps``'s fallback: name the fix for the common cases."""
    if hasattr(value, "model_dump"):
        raise TypeError(f"{type(value).__name__} is a pydantic model: {_MODEL_HINT}")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# one encoder, as json.dumps(value, allow_nan=False, separators=(",", ":"), default=_refuse) makes per call
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_refuse)

_SCALARS = frozenset({str, int, float, bool, type(None)})
_SMALL = 10**18  # ints below this print and parse back as themselves
_SHORT = MAX_RESULT_BYTES // 12  # a character is at most 12 bytes of JSON (a surrogate pair escaped)


def json_roundtrip(value: Any, what: str) -> Any:
    """Return ``value`` exactly as it comes back after a trip through JSON."""
    if value is None:
        return None
    return json.loads(dump_json(value, what))


def copy_json(value: Any) -> Any:
    """A deep copy of data that already came back from JSON (dicts with str
    keys, lists, str, finite numbers, bool, None): what another round trip
    would return, without one."""
    kind = type(value)
    if kind is dict:
        copied = value.copy()
        for k, v in copied.items():
            if type(v) not in _SCALARS:
                copied[k] = copy_json(v)
        return copied
    if kind is list:
        return [v if type(v) in _SCALARS else copy_json(v) for v in value]
    return value


def check_result(value: Any, what: str = "the result", *, task: str | None = None) -> Any:
    """``value`` as JSON carries it, or PayloadError if it is not JSON or is
    over ``MAX_RESULT_BYTES``. The error names ``what``, or with ``task``
    "the result of task <task>" (a text made only when needed)."""
    kind = type(value)
    # what JSON gives back unchanged needs no round trip: None, bool, a small int,
    # a finite float, a str short enough for any escaping, a flat dict (checked)
    if value is None or kind is bool or (kind is int and -_SMALL < value < _SMALL):
        return value
    if (kind is float and math.isfinite(value)) or (kind is str and len(value) <= _SHORT):
        return value
    if task is not None:
        what = f"the result of task {task!r}"
    if kind is dict and _flat(value):
        text = _encode(value, what)
        if len(text) <= MAX_RESULT_BYTES:  # ensure_ascii: one byte per character
            return value.copy()
    text = dump_json(value, what)
    size = len(text.encode("utf-8"))
    if size > MAX_RESULT_BYTES:
        raise PayloadError(
            f"{what} is {size} bytes as JSON, over the {MAX_RESULT_BYTES}-byte limit; "
            "store large data elsewhere (a file, a database row) and return its key"
        )
    return json.loads(text)


def check_payload(payload: Any) -> dict[str, Any]:
    """A payload is a JSON object; None means ``{}``."""
    if payload is None:
        return {}
    if type(payload) is dict and _plain_and_small(payload):
        return dict(payload)  # what JSON gives back, well under the limit: no need to encode it
    if type(payload) is dict and _flat(payload):
        # str keys and plain scalar values come back from JSON as they are: check
        # and measure the text, keep a copy of the dict
        _check_size(_encode(payload, "payload"))
        return dict(payload)
    if hasattr(payload, "model_dump") and not isinstance(payload, Mapping):
        raise PayloadError(
            f"payload is a pydantic model ({type(payload).__name__}), not a dict; {_MODEL_HINT}"
        )
    if not isinstance(payload, Mapping):
        raise PayloadError(
            f"payload must be a JSON object (a dict), got {type(payload).__name__}; "
            'wrap it, e.g. {"value": ...}'
        )
    text = dump_json(dict(payload), "payload")
    _check_size(text)
    result: dict[str, Any] = json.loads(text)
    return result


def _plain_and_small(payload: dict[Any, Any]) -> bool:
    """Whether JSON carries ``payload`` unchanged and its text is surely under
    ``MAX_PAYLOAD_BYTES``: str keys; values None, bool, an int JSON gives back
    as itself, a finite float or a str; at most 12 bytes of JSON a character
    (a surrogate pair escaped), 24 a number, plus quotes and separators."""
    size = 2
    for key, value in payload.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is str:
            size += 12 * len(value) + 2
        elif kind is int:
            if not -_SMALL < value < _SMALL:
                return False
            size += 24
        elif kind is float:
            if not math.isfinite(value):
                return False
            size += 24
        elif value is None or kind is bool:
            size += 5
        else:
            return False
        size += 12 * len(key) + 4
    return size <= MAX_PAYLOAD_BYTES


def _flat(payload: dict[Any, Any]) -> bool:
    for key, value in payload.items():
        if type(key) is not str or type(value) not in _SCALARS:
            return False
    return True


def _check_size(text: str) -> None:
    size = len(text)  # ensure_ascii: one byte per character
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload is {size} bytes as JSON, over the {MAX_PAYLOAD_BYTES}-byte limit; "
            "store large data elsewhere (a file, a database row) and pass its key"
        )


def resolve_due_time(now: datetime, delay_seconds: float | None, at: datetime | None) -> datetime:
    """The UTC instant a one-off schedule is due."""
    if (delay_seconds is None) == (at is None):
        raise InvalidScheduleError(
            "give exactly one of delay_seconds=<seconds> or at=<timezone-aware datetime>"
        )
    if at is not None:
        if not isinstance(at, datetime):
            raise InvalidScheduleError(f"at must be a datetime, got {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidScheduleError(
                f"at={at.isoformat()} is naive; pass a timezone-aware datetime, "
                "e.g. datetime(..., tzinfo=timezone.utc)"
            )
        try:
            due = at.astimezone(UTC)
        except OverflowError:
            raise InvalidScheduleError(
                f"at={at.isoformat()} is out of range in UTC; check the date"
            ) from None
        if (due - now).total_seconds() > MAX_DELAY_SECONDS:
            raise InvalidScheduleError(
                f"at={at.isoformat()} is more than ten years ahead ({MAX_DELAY_SECONDS} seconds, "
                "the farthest a schedule may reach); check the date"
            )
        return due
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, (int, float)):
        raise InvalidScheduleError(f"delay_seconds must be a number of seconds, got {delay_seconds!r}")
    if not math.isfinite(delay_seconds) or delay_seconds <= 0:
        raise InvalidScheduleError(
            f"delay_seconds must be > 0, got {delay_seconds!r}; use run_task() to run now"
        )
    if delay_seconds > MAX_DELAY_SECONDS:
        raise InvalidScheduleError(
            f"delay_seconds must be at most {MAX_DELAY_SECONDS} (ten years), got {delay_seconds!r}; "
            "check the unit (seconds, not milliseconds)"
        )
    return now + timedelta(seconds=delay_seconds)


def run_priority(options: TaskOptions, priority: Any) -> int:
    """A run's priority: the task's unless the call gives one."""
    if priority is None:
        return options.priority
    if isinstance(priority, bool) or priority not in (1, 2, 3):
        raise InvalidScheduleError(f"priority must be 1, 2 or 3 (3 runs first), got {priority!r}")
    return int(priority)
