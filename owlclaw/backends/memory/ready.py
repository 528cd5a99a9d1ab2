"""Queued runs waiting for a slot: highest priority first, then first come.

A run whose concurrency group (its task and its ``concurrency_key`` value) is at
the task's ``concurrency`` limit keeps its place until an attempt of that group
ends.
"""

from __future__ import annotations

import asyncio
import heapq
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

    def push(self, run: Run) -> None:
        heapq.heappush(self._heap, (-run.priority, next(self._seq), run))

    def queued(self) -> int:
        """How many runs wait here in the QUEUED state."""
        return sum(run.state is TaskState.QUEUED for _, _, run in self._heap)

    def startable(self) -> bool:
        """Whether a queued run could start now, given a free slot."""
        return any(r.state is TaskState.QUEUED and not self._at_limit(r) for _, _, r in self._heap)

    def take(self, room: Callable[[], bool]) -> Iterator[Run]:
        """Yield the runs to start, in order, while ``room()``; the caller calls
        ``started`` for each before asking for the next."""
        held: list[tuple[int, int, Run]] = []
        try:
            while room() and self._heap:
                item = heapq.heappop(self._heap)
                run = item[2]
                if run.state is not TaskState.QUEUED:
                    continue
                if self._at_limit(run):
                    held.append(item)
                    continue
                yield run
        finally:
            for item in held:
                heapq.heappush(self._heap, item)

    def started(self, run: Run, attempt: asyncio.Task[None]) -> None:
        if (group := _group(run)) is not None:
            self._in_group[group] = self._in_group.get(group, 0) + 1
            self._group_of[attempt] = group

    def ended(self, attempt: asyncio.Task[None]) -> None:
        if (group := self._group_of.pop(attempt, None)) is not None:
            self._in_group[group] -= 1

    def _at_limit(self, run: Run) -> bool:
        group = _group(run)
        limit = run.options.concurrency
        return group is not None and limit is not None and self._in_group.get(group, 0) >= limit


def _group(run: Run) -> Group | None:
    group = run.options.concurrency_group(run.payload)
    return None if group is None else (run.options.name, group)
