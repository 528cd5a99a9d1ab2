"""Queued runs waiting for a slot: highest priority first, then first come.

A run whose concurrency group (its task and its ``concurrency_key`` value) is at
the task's ``concurrency`` limit keeps its place until an attempt of that group
ends.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator

from owlclaw.backends.memory.runs import Run
from owlclaw.scheduler.models import TaskState

__all__ = ["ReadyQueue"]

Group = tuple[str, str]


class ReadyQueue:
    def __init__(self, seq: Iterator[int]) -> None:
        self._heap: list[tuple[int, int, Run]] = []
        self._seq = seq  # shared with the timetable: one order for everything queued
        self._in_group: dict[Group, int] = {}  # attempts in flight per concurrency group
        self._group_of: dict[asyncio.Task[None], Group] = {}
        # runs of a group at its limit, out of the heap (in their heap order) until
        # an attempt of the group ends: taking never scans them again
        self._held: dict[Group, list[tuple[int, int, Run]]] = {}

    def push(self, run: Run) -> None:
        heapq.heappush(self._heap, (-run.priority, next(self._seq), run))

    def __bool__(self) -> bool:
        """Whether any run may be waiting outside the held groups."""
        return bool(self._heap)

    def queued(self) -> int:
        """How many runs wait here in the QUEUED state."""
        waiting = itertools.chain(self._heap, *self._held.values())
        return sum(run.state is TaskState.QUEUED for _, _, run in waiting)

    def startable(self) -> bool:
        """Whether a queued run could start now, given a free slot (held runs cannot)."""
        return any(r.state is TaskState.QUEUED and not self._at_limit(r) for _, _, r in self._heap)

    def take(self, room: Callable[[], bool]) -> Iterator[Run]:
        """Yield the runs to start, in order, while ``room()``; the caller calls
        ``started`` for each before asking for the next."""
        while room() and self._heap:
            item = heapq.heappop(self._heap)
            run = item[2]
            if run.state is not TaskState.QUEUED:
                continue
            group = _group(run)
            if group is not None and self._full(group, run):
                heapq.heappush(self._held.setdefault(group, []), item)
                continue
            yield run

    def started(self, run: Run, attempt: asyncio.Task[None]) -> None:
        if (group := _group(run)) is not None:
            self._in_group[group] = self._in_group.get(group, 0) + 1
            self._group_of[attempt] = group

    def ended(self, attempt: asyncio.Task[None]) -> None:
        if (group := self._group_of.pop(attempt, None)) is not None:
            self._in_group[group] -= 1
            held = self._held.get(group)
            # the group has room for one more: its first queued held run goes back
            while held:
                item = heapq.heappop(held)
                if item[2].state is TaskState.QUEUED:
                    heapq.heappush(self._heap, item)
                    break
            if not held:
                self._held.pop(group, None)

    def _full(self, group: Group, run: Run) -> bool:
        limit = run.options.concurrency
        return limit is not None and self._in_group.get(group, 0) >= limit

    def _at_limit(self, run: Run) -> bool:
        group = _group(run)
        return group is not None and self._full(group, run)


def _group(run: Run) -> Group | None:
    group = run.options.concurrency_group(run.payload)
    return None if group is None else (run.options.name, group)
