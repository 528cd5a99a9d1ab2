"""Queued runs waiting for a slot: highest priority first, then first come.

A run whose concurrency group (its task and its ``concurrency_key`` value) is at
the task's ``concurrency`` limit keeps its place until an attempt of that group
ends.

Slots come in two pools, as on a Hatchet worker: attempts of durable tasks
take durable slots, the others ordinary ones (owlclaw asks Hatchet for as many
durable slots as ordinary ones), so a durable run, sleeping or not, never holds
up a run of an ordinary task.
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
    def __init__(self, seq: Iterator[int], slots: int = 100, durable_slots: int | None = None) -> None:
        self._heap: list[tuple[int, int, Run]] = []
        self._limit = {False: slots, True: slots if durable_slots is None else durable_slots}
        self._used = {False: 0, True: 0}  # attempts in flight per pool (durable or not)
        self._pool_of: dict[asyncio.Task[None], bool] = {}
        self._seq = seq  # shared with the timetable: one order for everything queued
        self._in_group: dict[Group, int] = {}  # attempts in flight per concurrency group
        self._group_of: dict[asyncio.Task[None], Group] = {}

    def push(self, run: Run) -> None:
        heapq.heappush(self._heap, (-run.priority, next(self._seq), run))

    def queued(self) -> int:
        """How many runs wait here in the QUEUED state."""
        return sum(run.state is TaskState.QUEUED for _, _, run in self._heap)

    def startable(self) -> bool:
        """Whether a queued run could start now (a slot of its pool is free)."""
        return any(r.state is TaskState.QUEUED and self._can_start(r) for _, _, r in self._heap)

    def has_room(self) -> bool:
        """Whether either pool has a free slot."""
        return any(self._used[pool] < self._limit[pool] for pool in (False, True))

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
                if not self._can_start(run):
                    held.append(item)
                    continue
                yield run
        finally:
            for item in held:
                heapq.heappush(self._heap, item)

    def started(self, run: Run, attempt: asyncio.Task[None]) -> None:
        self._used[run.options.durable] += 1
        self._pool_of[attempt] = run.options.durable
        if (group := _group(run)) is not None:
            self._in_group[group] = self._in_group.get(group, 0) + 1
            self._group_of[attempt] = group

    def ended(self, attempt: asyncio.Task[None]) -> None:
        if (pool := self._pool_of.pop(attempt, None)) is not None:
            self._used[pool] -= 1
        if (group := self._group_of.pop(attempt, None)) is not None:
            self._in_group[group] -= 1

    def _can_start(self, run: Run) -> bool:
        return self._used[run.options.durable] < self._limit[run.options.durable] and not self._at_limit(run)

    def _at_limit(self, run: Run) -> bool:
        group = _group(run)
        limit = run.options.concurrency
        return group is not None and limit is not None and self._in_group.get(group, 0) >= limit


def _group(run: Run) -> Group | None:
    group = run.options.concurrency_group(run.payload)
    return None if group is None else (run.options.name, group)
