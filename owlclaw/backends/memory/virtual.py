"""The memory backend's virtual-time API: ``advance`` and ``run_until_idle``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import cast

from owlclaw.backends.memory import guards
from owlclaw.backends.memory.ready import ReadyQueue
from owlclaw.scheduler.clock import Clock, VirtualClock
from owlclaw.scheduler.limits import check_wait_seconds

__all__ = ["VirtualTime"]

_VIRTUAL_YEAR = 365 * 24 * 3600.0


class VirtualTime:
    """Moves a ``VirtualClock`` from one due time to the next (a part of
    ``MemoryScheduler``, which provides what is declared here)."""

    clock: Clock
    _worker: asyncio.Task[None] | None
    _ready: ReadyQueue

    async def _settle(self) -> None:
        raise NotImplementedError

    def _next_due(self, *, skip_crons: bool = False) -> datetime | None:
        raise NotImplementedError

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock forward, running everything that falls due
        (delays, crons, retries, durable sleeps) in due order; returns when
        those runs have finished or are sleeping.

        :raises NotSupportedError: the scheduler runs on the real clock.
        """
        clock = self._virtual_clock("advance()")
        seconds = check_wait_seconds("advance()", seconds)
        target = clock.now() + timedelta(seconds=seconds)
        await self._settle()
        while (nxt := self._next_due()) is not None and nxt <= target:
            clock.move_to(nxt)
            await self._settle()
        clock.move_to(target)
        await self._settle()
        guards.warn_no_worker("advance()", self._worker, self._ready.queued())

    async def run_until_idle(self, max_seconds: float = _VIRTUAL_YEAR) -> None:
        """Run until nothing is running, queued or waiting, crons aside.

        On a virtual clock time jumps from one due time to the next, for at
        most ``max_seconds`` of virtual time (a task that reschedules itself
        forever would otherwise never be idle). On the real clock it waits for
        what is due now to finish, at most ``max_seconds``.

        :raises WaitTimeoutError: on the real clock, still busy after ``max_seconds``.
        :raises RunawayTaskError: a task keeps queueing runs at one virtual instant.
        """
        max_seconds = check_wait_seconds("run_until_idle(max_seconds=...)", max_seconds)
        clock = self._moving_clock()
        if clock is None:
            await guards.settle_within(self._settle(), max_seconds)
            return
        await self._settle()
        deadline = clock.now() + timedelta(seconds=max_seconds)
        while (nxt := self._next_due(skip_crons=True)) is not None and nxt <= deadline:
            # crons that fall before it still fire, in order
            clock.move_to(self._next_due() or nxt)
            await self._settle()
        guards.warn_no_worker("run_until_idle()", self._worker, self._ready.queued())

    def _moving_clock(self) -> VirtualClock | None:
        """The clock, when it is virtual (it moves only when told to)."""
        return cast(VirtualClock, self.clock) if self.clock.is_virtual else None

    def _virtual_clock(self, what: str) -> VirtualClock:
        return guards.need_virtual(self._moving_clock(), what)
