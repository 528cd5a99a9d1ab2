"""Settings of the in-memory backend (``scheduler.memory`` in owlclaw.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MemoryConfig"]


class MemoryConfig(BaseModel):
    """The in-memory backend: runs tasks in this process, nothing persists."""

    model_config = ConfigDict(extra="forbid")

    slots: int = Field(
        default=100, ge=1, description="Most runs executing at once, like a Hatchet worker's slots."
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
