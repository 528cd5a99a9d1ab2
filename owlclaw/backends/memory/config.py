"""Settings of the in-memory backend (``scheduler.memory`` in owlclaw.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MemoryConfig"]


class MemoryConfig(BaseModel):
    """The in-memory backend: runs tasks in this process, nothing persists."""

    model_config = ConfigDict(extra="forbid")

    slots: int = Field(
        default=100, ge=1, description="Most runs executing at once, like a Hatchet worker's slots."
    )
