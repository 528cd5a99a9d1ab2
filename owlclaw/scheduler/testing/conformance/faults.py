"""What callers see when the engine cannot be reached or goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from owlclaw.scheduler.errors import SchedulerConnectionError
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["SchedulerFaultConformance"]


class SchedulerFaultConformance:
    """What callers see when the engine cannot be reached or goes away.

    The memory backend injects these faults (``scheduler.faults``); a real
    backend produces them for real (an address nothing listens on, an engine
    stopped under a connected scheduler). Both must raise
    ``SchedulerConnectionError`` for them, never hang or raise something else.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    #: Operations checked after the engine is gone (all take the same arguments on every backend).
    CALLS_WITHOUT_ENGINE: ClassVar[dict[str, Callable[[Scheduler, str], Awaitable[Any]]]] = {
        "run_task": lambda s, i: s.run_task("conf_echo", {"value": 1}),
        "schedule_task": lambda s, i: s.schedule_task("conf_echo", {}, delay_seconds=60),
        "add_cron": lambda s, i: s.add_cron("conf_cron_target", "@daily"),
        "list_crons": lambda s, i: s.list_crons(),
        "get_task_status": lambda s, i: s.get_task_status(i),
        "cancel_task": lambda s, i: s.cancel_task(i),
        "list_tasks": lambda s, i: s.list_tasks(),
        "list_scheduled_tasks": lambda s, i: s.list_scheduled_tasks(),
    }

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[Scheduler]:
        """A scheduler with the conformance tasks, not connected, whose engine
        cannot be reached. Backends must override this."""
        raise NotImplementedError("provide an `unreachable` fixture for your backend")
        yield  # pragma: no cover

    @pytest.fixture
    async def engine_loss(self) -> AsyncIterator[tuple[Scheduler, Callable[[], Awaitable[None]]]]:
        """A connected scheduler with the conformance tasks, and an async
        function that takes its engine away. Backends must override this."""
        raise NotImplementedError("provide an `engine_loss` fixture for your backend")
        yield  # pragma: no cover

    async def test_connect_to_an_unreachable_engine_raises_connection_error(
        self, unreachable: Scheduler
    ) -> None:
        """connect() to an engine that cannot be reached raises SchedulerConnectionError naming it."""
        with pytest.raises(SchedulerConnectionError) as caught:
            await unreachable.connect()
        assert "engine" in str(caught.value)
        with pytest.raises(SchedulerConnectionError, match="connect"):
            await unreachable.run_task("conf_echo")

    async def test_calls_after_the_engine_is_gone_raise_connection_error(
        self, engine_loss: tuple[Scheduler, Callable[[], Awaitable[None]]]
    ) -> None:
        """Once the engine is gone every operation raises SchedulerConnectionError."""
        scheduler, lose_engine = engine_loss
        task_id = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        await lose_engine()
        for name, call in self.CALLS_WITHOUT_ENGINE.items():
            try:
                await call(scheduler, task_id)
            except SchedulerConnectionError:
                continue
            except Exception as exc:
                raise AssertionError(
                    f"{name} raised {type(exc).__name__}, not SchedulerConnectionError"
                ) from exc
            raise AssertionError(f"{name} succeeded without an engine")
