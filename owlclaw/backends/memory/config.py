"""Settings of the in-memory backend (``scheduler.memory`` in owlclaw.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MemoryConfig", "MimicMode"]

MimicMode = Literal["none", "hatchet"]


class MemoryConfig(BaseModel):
    """The in-memory backend: runs tasks in this process, nothing persists."""

    model_config = ConfigDict(extra="forbid")

    slots: int = Field(
        default=100,
        ge=1,
        description="Most attempts of non-durable tasks executing at once, like a Hatchet worker's slots "
        "(durable tasks have durable_slots).",
    )
    durable_slots: int | None = Field(
        default=None,
        ge=1,
        description="Most attempts of durable tasks executing at once, in a pool of their own as on "
        "a Hatchet worker (owlclaw gives a Hatchet worker as many durable slots as slots); "
        "None: the same as `slots`.",
    )
    mimic: MimicMode = Field(
        default="none",
        description='"hatchet": reproduce, as deterministic worst cases, where Hatchet is less precise than '
        "this backend (schedules due within 5 s fire 5 s after they were made, backoff capped in whole "
        "seconds, retries start 30 s after their backoff, started_at is the latest attempt's, run_task from "
        "a retried attempt returns the first attempt's run, list_tasks reaches 6 days back, priority orders "
        "runs of one task only, a cancelled run's code goes on for 1 s, a run not started within "
        "schedule_timeout_seconds fails), so a test "
        'that relies on the extra precision fails here first. "none": exact.',
    )
    schedule_timeout_seconds: float = Field(
        default=86400,
        gt=0,
        le=10 * 365 * 86400,
        description='Under mimic "hatchet": how long a due run may wait to start before it fails, as '
        "scheduler.hatchet.schedule_timeout_seconds (and its default); without mimic runs wait forever.",
    )
    settle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Seconds of real time advance(), run_until_idle() and wait_for_task() wait for a "
        "running attempt to finish or park before they raise WaitTimeoutError naming it.",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds stop_worker() (and leaving `async with`) lets running attempts finish "
        "before it cancels them and queues their runs again; durable sleepers are cancelled at once.",
    )
    retention_runs: int | None = Field(
        default=10_000,
        ge=1,
        description="Finished runs kept for look-ups and listings; past it the oldest finished is dropped "
        "(its id then reads as not found). Null keeps every run (memory grows by about 4 KiB a run).",
    )
    retention_seconds: Annotated[float, Field(gt=0)] | Literal["auto"] | None = Field(
        default="auto",
        description="Finished runs are dropped this many seconds (on the scheduler's clock) after they "
        "finish. auto: a week on the real clock, no age limit on a virtual clock. Null: no age limit.",
    )
