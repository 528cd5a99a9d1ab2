"""One structured log line per attempt event, under ``owlclaw.scheduler.runs``.

Each record carries its fields as attributes (``event``, ``task_name``,
``task_id``, ``attempt``, ``duration_seconds``, ``error``; for a run a
schedule fired, ``occurrence_id`` and, on its first attempt, ``lateness_seconds``
from the nominal time) for JSON log
formatters, and the same fields as ``key=value`` in its message. The payload
is logged only at DEBUG.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["attempt_event", "log", "log_payload"]

log = logging.getLogger("owlclaw.scheduler.runs")


def attempt_event(
    level: int,
    event: str,
    task_name: str,
    task_id: str,
    attempt: int,
    *,
    duration: float | None = None,
    error: str | None = None,
    will_retry: bool | None = None,
    occurrence_id: str | None = None,
    lateness: float | None = None,
) -> None:
    if not log.isEnabledFor(level):
        return
    fields: dict[str, Any] = {"task_name": task_name, "task_id": task_id, "attempt": attempt}
    if occurrence_id is not None:
        fields["occurrence_id"] = occurrence_id
        if lateness is not None:
            fields["lateness_seconds"] = round(lateness, 6)
    if duration is not None:
        fields["duration_seconds"] = round(duration, 6)
    if will_retry is not None:
        fields["will_retry"] = will_retry
    if error is not None:
        fields["error"] = error
    text = " ".join(f"{k}={v!r}" if k == "error" else f"{k}={v}" for k, v in fields.items())
    log.log(level, "run %s %s", event, text, extra={"event": event, **fields})


def log_payload(task_name: str, task_id: str, attempt: int, payload: Any) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    # Payloads were checked as JSON when scheduled (owlclaw.scheduler.kit.payloads,
    # which depends on this package); what is not JSON is shown as its repr.
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(payload)
    log.debug(
        "run payload task_name=%s task_id=%s attempt=%d payload=%s",
        task_name,
        task_id,
        attempt,
        text,
        extra={"event": "payload", "task_name": task_name, "task_id": task_id, "attempt": attempt},
    )
