"""A bounded memory of what one process made or learned, for ``Lookups``.

The engine's answers lag its writes, so a process remembers the runs and
schedules it created, the schedules it cancelled and the runs the engine
lost, to answer for them meanwhile. Without a bound a long-running process
would keep every one (docs/hatchet.md, "What one process remembers").
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from owlclaw.scheduler.clock import utc_now

__all__ = ["Recent"]

V = TypeVar("V")


class Recent(Generic[V]):
    """A dict that forgets an entry ``keep`` after the time ``until(value)``
    (when the entry stops being needed), and holds at most ``limit`` entries:
    past it, the entry whose time comes first goes first."""

    def __init__(
        self,
        until: Callable[[V], datetime],
        *,
        keep: timedelta,
        limit: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._until = until
        self._keep = keep
        self._limit = limit
        self._clock = clock
        self._data: dict[str, tuple[int, V]] = {}
        self._order: list[tuple[datetime, int, str]] = []  # a heap: (until, insertion number, key)
        self._count = 0

    def __setitem__(self, key: str, value: V) -> None:
        self._count += 1
        self._data[key] = (self._count, value)
        heapq.heappush(self._order, (self._until(value), self._count, key))
        self._prune(self._clock() - self._keep)

    def _prune(self, cutoff: datetime) -> None:
        order, data = self._order, self._data
        while order and (order[0][0] < cutoff or len(data) > self._limit):
            _, number, key = heapq.heappop(order)
            entry = data.get(key)
            if entry is not None and entry[0] == number:  # not replaced since
                del data[key]
        if len(order) > 2 * len(data) + 64:  # replaced entries' stale heap rows
            self._order = [row for row in order if data.get(row[2], (0,))[0] == row[1]]
            heapq.heapify(self._order)

    def get(self, key: str) -> V | None:
        entry = self._data.get(key)
        return None if entry is None else entry[1]

    def __getitem__(self, key: str) -> V:
        return self._data[key][1]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> Iterator[tuple[str, V]]:
        """The entries, oldest first (a snapshot: safe to change the map meanwhile)."""
        return iter([(key, entry[1]) for key, entry in self._data.items()])
