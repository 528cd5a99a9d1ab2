"""Queued runs waiting for a slot: highest priority first, then first come.

A run whose concurrency group (its task and its ``concurrency_key`` value) is at
the task's ``concurrency`` limit keeps its place until an attempt of that group
ends.

Slots come in two pools, as on a Hatchet worker: attempts of durable tasks
take durable slots, the others ordinary ones (owlclaw asks Hatchet for as many
durable slots as ordinary ones), so a durable run, sleeping or not, never holds
up a run of an ordinary task.

Under ``MemoryConfig(mimic="hatchet")`` priority orders runs of the same task
only, as on Hatchet: each task has its own queue, and the tasks take turns in
the order their runs arrived (each run queued gives its task one turn, taken by
that task's best run).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator

from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.backends.memory.runs import Run
from owlclaw.scheduler.models import TaskState

__all__ = ["ReadyQueue"]

Group = tuple[str, str]
Item = tuple[int, int, Run]  # (sort key, arrival, run)


class ReadyQueue:
    def __init__(
        self,
        seq: Iterator[int],
        config: MemoryConfig | None = None,
        on_queued: Callable[[Run], None] | None = None,
    ) -> None:
        config = config or MemoryConfig()
        self._on_queued = on_queued  # told of each run queued (MemoryConfig.mimic's schedule timeout)
        self._heap: list[tuple[int, int, Run]] = []
        #: mimic="hatchet": a queue per task, by priority; self._heap then holds the tasks' turns
        self._by_task: dict[str, list[Item]] | None = {} if config.mimic == "hatchet" else None
        slots, durable_slots = config.slots, config.durable_slots
        self._limit = {False: slots, True: slots if durable_slots is None else durable_slots}
        self._used = {False: 0, True: 0}  # attempts in flight per pool (durable or not)
        self._pool_of: dict[asyncio.Task[None], bool] = {}
        self._seq = seq  # shared with the timetable: one order for everything queued
        self._in_group: dict[Group, int] = {}  # attempts in flight per concurrency group
        self._group_of: dict[asyncio.Task[None], Group] = {}

    def push(self, run: Run) -> None:
        if self._on_queued is not None:
            self._on_queued(run)
        seq = next(self._seq)
        if self._by_task is None:
            heapq.heappush(self._heap, (-run.priority, seq, run))
            return
        heapq.heappush(self._by_task.setdefault(run.options.name, []), (-run.priority, seq, run))
        heapq.heappush(self._heap, (0, seq, run))  # a turn for the run's task, in arrival order

    def _waiting(self) -> Iterator[Run]:
        items = self._heap if self._by_task is None else itertools.chain.from_iterable(self._by_task.values())
        return (run for _, _, run in items if run.state is TaskState.QUEUED)

    def queued(self) -> int:
        """How many runs wait here in the QUEUED state."""
        return sum(1 for _ in self._waiting())

    def startable(self) -> bool:
        """Whether a queued run could start now (a slot of its pool is free)."""
        return any(self._can_start(r) for r in self._waiting())

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
                run: Run | None = item[2]
                if self._by_task is not None:  # a turn of the run's task: the task's best run takes it
                    run, waiting = self._best_of(item[2].options.name)
                    if run is None:
                        held.extend([item] if waiting else [])  # the turn waits while its runs do
                        continue
                elif item[2].state is not TaskState.QUEUED:
                    continue
                elif not self._can_start(item[2]):
                    held.append(item)
                    continue
                if run is not None:
                    yield run
        finally:
            for item in held:
                heapq.heappush(self._heap, item)

    def _best_of(self, task: str) -> tuple[Run | None, bool]:
        """The highest-priority queued run of ``task`` that can start, taken off
        its queue, and whether other runs of the task still wait."""
        heap = self._by_task[task] if self._by_task is not None else []
        held: list[tuple[int, int, Run]] = []
        found = None
        while heap and found is None:
            item = heapq.heappop(heap)
            if item[2].state is not TaskState.QUEUED:
                continue
            if self._can_start(item[2]):
                found = item[2]
            else:
                held.append(item)
        for item in held:
            heapq.heappush(heap, item)
        return found, bool(held)

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
