"""Queued runs waiting for a slot: highest priority first, then first come.

Slots come in two pools, as on a Hatchet worker: attempts of durable tasks
take durable slots, the others ordinary ones (owlclaw asks Hatchet for as many
durable slots as ordinary ones), so a durable run, sleeping or not, never holds
up a run of an ordinary task. Each pool has its own queue.

A run whose concurrency group (its task and its ``concurrency_key`` value) is at
the task's ``concurrency`` limit leaves the queue, keeping its place, until an
attempt of that group ends: taking never scans it again, so N runs of a
``concurrency=1`` task drain in O(N log N).

Under ``MemoryConfig(mimic="hatchet")`` priority orders runs of the same task
only, as on Hatchet: each task has its own queue, and the tasks take turns in
the order their runs arrived (each run queued gives its task one turn, taken by
that task's best run that can start).
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
QUEUED = TaskState.QUEUED


class _Pool:
    """One pool of slots and its queue (of runs, or under mimic of task turns)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.heap: list[Item] = []

    def has_room(self) -> bool:
        return self.used < self.limit


class ReadyQueue:
    def __init__(
        self,
        seq: Iterator[int],
        config: MemoryConfig | None = None,
        on_queued: Callable[[Run], None] | None = None,
    ) -> None:
        config = config or MemoryConfig()
        self._on_queued = on_queued  # told of each run queued (MemoryConfig.mimic's schedule timeout)
        durable = config.slots if config.durable_slots is None else config.durable_slots
        self._pools = {False: _Pool(config.slots), True: _Pool(durable)}
        self._both = (self._pools[False], self._pools[True])  # ordinary, durable: no dict walk per call
        #: mimic="hatchet": a queue per task, by priority; the pools' heaps then hold the tasks' turns
        self._by_task: dict[str, list[Item]] | None = {} if config.mimic == "hatchet" else None
        self._seq = seq  # shared with the timetable: one order for everything queued
        self._in_group: dict[Group, int] = {}  # attempts in flight per concurrency group
        self._attempts: dict[asyncio.Task[None], tuple[bool, Group | None]] = {}
        # runs of a group at its limit, out of the queue (in their queue order)
        # until an attempt of the group ends
        self._held: dict[Group, list[Item]] = {}

    def push(self, run: Run) -> None:
        if self._on_queued is not None:
            self._on_queued(run)
        seq = next(self._seq)
        pool = self._pools[run.options.durable]
        if self._by_task is None:
            heapq.heappush(pool.heap, (-run.priority, seq, run))
            return
        heapq.heappush(self._by_task.setdefault(run.options.name, []), (-run.priority, seq, run))
        heapq.heappush(pool.heap, (0, seq, run))  # a turn for the run's task, in arrival order

    def reserve(self, run: Run) -> None:
        """``run`` holds a slot of its pool until ``release`` (mimic: a held short delay)."""
        run.holds_slot = True
        self._pools[run.options.durable].used += 1

    def release(self, run: Run) -> None:
        if run.holds_slot:
            run.holds_slot = False
            self._pools[run.options.durable].used -= 1

    def __bool__(self) -> bool:
        """Whether any run may be waiting outside the held groups."""
        ordinary, durable = self._both
        return bool(ordinary.heap or durable.heap)

    def _waiting(self) -> Iterator[Run]:
        if self._by_task is None:
            items = itertools.chain(*(p.heap for p in self._pools.values()), *self._held.values())
        else:
            items = itertools.chain.from_iterable(self._by_task.values())
        return (run for _, _, run in items if run.state is TaskState.QUEUED)

    def queued(self) -> int:
        """How many runs wait here in the QUEUED state."""
        return sum(1 for _ in self._waiting())

    def startable(self) -> bool:
        """Whether a queued run could start now (a slot of its pool is free)."""
        if self._by_task is None:
            for pool in self._both:  # no generator for an empty queue (asked at every settle step)
                if pool.heap and pool.has_room() and any(r.state is QUEUED for _, _, r in pool.heap):
                    return True
            return False
        return any(self._can_start(r) for r in self._waiting())

    def has_room(self) -> bool:
        """Whether either pool has a free slot."""
        ordinary, durable = self._both
        return ordinary.used < ordinary.limit or durable.used < durable.limit

    def take(self) -> Iterator[Run]:
        """Yield the runs to start, in order, while their pool has a free slot;
        the caller calls ``started`` for each before asking for the next."""
        turns: list[tuple[_Pool, Item]] = []  # mimic: turns whose task has only blocked runs
        try:
            while (pool := self._next_pool()) is not None:
                item = heapq.heappop(pool.heap)
                if self._by_task is not None:  # a turn of the run's task: the task's best run takes it
                    run, waiting = self._best_of(item[2].options.name)
                    if run is None:
                        if waiting:
                            turns.append((pool, item))  # the turn waits while its runs do
                        continue
                    yield run
                    continue
                run = item[2]
                if run.state is not TaskState.QUEUED:
                    continue
                group = _group(run) if run.options.concurrency is not None else None
                if group is not None and self._full(group, run):
                    heapq.heappush(self._held.setdefault(group, []), item)
                    continue
                yield run
        finally:
            for pool, item in turns:
                heapq.heappush(pool.heap, item)

    def _next_pool(self) -> _Pool | None:
        """The pool with a free slot whose next item comes first."""
        ordinary, durable = self._both
        first = ordinary if ordinary.heap and ordinary.used < ordinary.limit else None
        if not (durable.heap and durable.used < durable.limit):
            return first
        if first is None or durable.heap[0][:2] < first.heap[0][:2]:
            return durable
        return first

    def _best_of(self, task: str) -> tuple[Run | None, bool]:
        """The highest-priority queued run of ``task`` that can start, taken off
        its queue, and whether other runs of the task still wait."""
        heap = self._by_task[task] if self._by_task is not None else []
        held: list[Item] = []
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
        durable = run.options.durable
        self._pools[durable].used += 1
        group = _group(run) if run.options.concurrency is not None else None  # unlimited: a frame less
        if group is not None:
            self._in_group[group] = self._in_group.get(group, 0) + 1
        self._attempts[attempt] = (durable, group)

    def ended(self, attempt: asyncio.Task[None]) -> None:
        found = self._attempts.pop(attempt, None)
        if found is None:
            return
        durable, group = found
        self._pools[durable].used -= 1
        if group is None:
            return
        self._in_group[group] -= 1
        held = self._held.get(group)
        # the group has room for one more: its first queued held run goes back
        while held:
            item = heapq.heappop(held)
            if item[2].state is TaskState.QUEUED:
                heapq.heappush(self._pools[durable].heap, item)
                break
        if not held:
            self._held.pop(group, None)

    def _can_start(self, run: Run) -> bool:
        group = _group(run)
        room = self._pools[run.options.durable].has_room()
        return room and not (group is not None and self._full(group, run))

    def _full(self, group: Group, run: Run) -> bool:
        limit = run.options.concurrency
        return limit is not None and self._in_group.get(group, 0) >= limit


def _group(run: Run) -> Group | None:
    group = run.options.concurrency_group(run.payload)
    return None if group is None else (run.options.name, group)
