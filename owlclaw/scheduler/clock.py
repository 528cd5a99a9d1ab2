"""Where the scheduler reads the time. No other module calls ``datetime.now()``.

``SystemClock`` is the real one; ``VirtualClock`` only moves when a test
advances it, so a 30-day sleep takes no real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from owlclaw.scheduler.errors import InvalidScheduleError

__all__ = ["Clock", "SystemClock", "VirtualClock", "utc_now"]


class Clock(Protocol):
    @property
    def is_virtual(self) -> bool: ...

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    is_virtual = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that stands still until ``MemoryScheduler.advance()`` moves it."""

    is_virtual = True

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise InvalidScheduleError(
                "VirtualClock(start=...) needs a timezone-aware datetime, "
                "e.g. datetime(2030, 1, 1, tzinfo=timezone.utc)"
            )
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def move_to(self, when: datetime) -> None:
        """Set the time; it never goes backwards."""
        if when > self._now:
            self._now = when

    def move_by(self, seconds: float) -> None:
        self.move_to(self._now + timedelta(seconds=seconds))

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now.isoformat()})"


_system = SystemClock()


def utc_now() -> datetime:
    """The real time, for code that has no scheduler clock at hand."""
    return _system.now()
