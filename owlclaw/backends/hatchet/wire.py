"""What owlclaw stores in the engine, and how it is read back.

A run's or schedule's ``additional_metadata`` carries owlclaw's keys below;
a result is wrapped in ``{RESULT_KEY: value}`` (Hatchet wants dict outputs);
the engine's times, inputs and stored errors are decoded here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.contracts.v1.workflows_pb2 import GetRunDetailsRequest
from hatchet_sdk.exceptions import NonRetryableException, TaskRunError
from hatchet_sdk.utils.api_auth import create_authorization_header

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.models import TaskState

__all__ = [
    "CANCEL_MARK",
    "DUE_KEY",
    "HOLD_KEY",
    "HOLD_SECONDS",
    "ID_KEY",
    "NOMINAL_KEY",
    "OCCURRENCE_KEY",
    "QUEUED_KEY",
    "RESULT_KEY",
    "SCHEDULE_KEY",
    "SDK_STATUSES",
    "STATES",
    "TASK_KEY",
    "due_of",
    "error_text",
    "held_until",
    "is_non_retryable",
    "lateness",
    "payload_of",
    "utc",
]

ID_KEY = "owlclaw_task_id"  # our id, in a schedule's (and its run's) additional metadata
DUE_KEY = "owlclaw_due"  # the due time of a schedule, ISO 8601 UTC
HOLD_KEY = "owlclaw_hold"  # on a run queued before its due time: the worker holds it until then
QUEUED_KEY = "owlclaw_queued_at"  # when run_task was called, ISO 8601 UTC: the lateness metric's start
RESULT_KEY = "owlclaw_result"  # Hatchet wants dict outputs: results are wrapped in this key
TASK_KEY = "owlclaw_task_name"  # on a tombstone: the task whose schedule was cancelled
SCHEDULE_KEY = "owlclaw_schedule"  # on a link and on a run a schedule fired: the schedule's id
NOMINAL_KEY = "owlclaw_nominal"  # on a run a schedule fired: the occurrence's nominal time, ISO 8601 UTC
OCCURRENCE_KEY = "owlclaw_occurrence"  # on a run a schedule fired: the occurrence id
#: A one-off schedule due sooner than this is queued as a run at once and held
#: by the worker until due (``hold_short_delays``): the engine's ticker could
#: fire it up to 5 s late (docs/hatchet.md, "Short delays").
HOLD_SECONDS = 6.0
# a run's log line from the worker: the cancel reached it before the task returned,
# so the SDK drops the result and the run ends CANCELLED (cancel.py reads it)
CANCEL_MARK = "owlclaw: cancelled before the task returned"

STATES = {
    V1TaskStatus.QUEUED: TaskState.QUEUED,
    V1TaskStatus.RUNNING: TaskState.RUNNING,
    V1TaskStatus.COMPLETED: TaskState.SUCCEEDED,
    V1TaskStatus.FAILED: TaskState.FAILED,
    V1TaskStatus.CANCELLED: TaskState.CANCELLED,
}
SDK_STATUSES = {v: k for k, v in STATES.items()}


def utc(value: datetime | None) -> datetime | None:
    """An engine time in UTC; None for the engine's "never" (Go's zero time)."""
    if value is None or value.year == 1:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def due_of(metadata: Mapping[str, Any]) -> datetime | None:
    """The due time a schedule (and its run) carries in its metadata."""
    due = metadata.get(DUE_KEY)
    return utc(datetime.fromisoformat(due)) if isinstance(due, str) else None


def held_until(metadata: Mapping[str, Any]) -> datetime | None:
    """The due time of a run queued early and held by its worker; None for other runs."""
    return due_of(metadata) if metadata.get(HOLD_KEY) else None


def error_text(serialized: str | None) -> str | None:
    """``Type: message`` from the engine's stored error (which adds a traceback)."""
    if not serialized:
        return None
    err = TaskRunError.deserialize(serialized)
    if err.exc_type == NonRetryableException.__name__:  # owlclaw's wrapper put "Type: message" in it
        return err.exc or serialized
    if err.exc_type and err.exc_type != "HatchetError":
        return f"{err.exc_type}: {err.exc}"
    return err.exc or serialized


def is_non_retryable(serialized: str | None) -> bool:
    """Whether a stored error is the SDK's "do not retry" wrapper."""
    if not serialized:
        return False
    return TaskRunError.deserialize(serialized).exc_type == NonRetryableException.__name__


def payload_of(raw: Any) -> dict[str, Any]:
    """The task input from a run's stored input (the engine wraps it with trigger data)."""
    if not isinstance(raw, dict):
        return {}
    if "input" in raw and ("triggered_by" in raw or "parents" in raw):
        inner = raw["input"]
        return dict(inner) if isinstance(inner, dict) else {}
    return dict(raw)


def lateness(metadata: Mapping[str, Any], attempt: int) -> float | None:
    """Seconds from due time (or the run_task call) to the first attempt's start."""
    due = metadata.get(DUE_KEY) or metadata.get(QUEUED_KEY)
    if attempt != 1 or not isinstance(due, str):
        return None
    try:
        return (utc_now() - datetime.fromisoformat(due)).total_seconds()
    except ValueError:
        return None


def core_details_once(admin: Any, run_id: str, timeout: float) -> Any:
    """One ``GetRunDetails`` call (the engine's core side) through the SDK's
    admin client ``admin``, without the SDK's retries: they retry "not found"
    for about 16 s, and would outlast a short outage. Raises ``grpc.RpcError``."""
    request = GetRunDetailsRequest(external_id=run_id)
    stub = admin._get_or_create_v1_client()
    return stub.GetRunDetails(request, metadata=create_authorization_header(admin.token), timeout=timeout)
