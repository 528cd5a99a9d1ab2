"""How long the memory backend remembers finished runs.

Every run is kept while it is pending or running. Once final (succeeded,
failed, cancelled) it is kept for status look-ups and listings until either
bound is passed: more than ``max_runs`` finished runs (the oldest finished is
dropped first), or finished more than ``max_age`` seconds ago on the
scheduler's clock. A dropped run reads as ``TaskNotFoundError``, as a run past
the engine's retention does on Hatchet.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

from owlclaw.backends.memory.config import MemoryConfig

__all__ = ["REAL_CLOCK_MAX_AGE_SECONDS", "Retention"]

#: Default age limit on the real clock: a long-running process keeps a week.
REAL_CLOCK_MAX_AGE_SECONDS = 7 * 86400.0


class Retention:
    """Finished runs in the order they finished, and the limits that drop them."""

    def __init__(self, max_runs: int | None, max_age_seconds: float | None) -> None:
        self.max_runs = max_runs
        self.max_age = None if max_age_seconds is None else timedelta(seconds=max_age_seconds)
        self._finished: deque[tuple[datetime, str]] = deque()

    @classmethod
    def from_config(cls, config: MemoryConfig, *, virtual_clock: bool) -> Retention:
        """The config's limits; ``retention_seconds="auto"`` is a week on the
        real clock and no age limit on a virtual one (a simulated month keeps
        its runs, within ``retention_runs``)."""
        age = config.retention_seconds
        if age == "auto":
            age = None if virtual_clock else REAL_CLOCK_MAX_AGE_SECONDS
        return cls(config.retention_runs, age)

    def finished(self, run_id: str, at: datetime, runs: dict[str, Any]) -> None:
        """Note that ``run_id`` finished at ``at``; drop what is over the limits."""
        finished = self._finished
        finished.append((at, run_id))
        if self.max_age is not None:
            self.prune(runs, at)
        elif self.max_runs is not None and len(finished) > self.max_runs:
            runs.pop(finished.popleft()[1], None)  # one in, one out: prune() without its loop

    def prune(self, runs: dict[str, Any], now: datetime) -> None:
        """Remove from ``runs`` the finished runs past either limit."""
        finished = self._finished
        if self.max_runs is not None:
            while len(finished) > self.max_runs:
                runs.pop(finished.popleft()[1], None)
        if self.max_age is not None:
            oldest = now - self.max_age
            while finished and finished[0][0] < oldest:
                runs.pop(finished.popleft()[1], None)

    def __len__(self) -> int:
        return len(self._finished)
