"""The ``ctx`` an OwlClaw handler receives: Hatchet's names over owlclaw's ``TaskContext``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from owlclaw.scheduler.errors import NotSupportedError
from owlclaw.scheduler.models import TaskContext

__all__ = ["HatchetTaskContext", "takes_input_and_ctx", "wrap_handler"]


class HatchetTaskContext:
    """What a handler declared with ``HatchetClient.task``/``durable_task`` sees as ``ctx``."""

    def __init__(self, ctx: TaskContext, *, durable: bool) -> None:
        self.owlclaw = ctx
        self._durable = durable

    @property
    def workflow_run_id(self) -> str:
        """The id ``run_task_now``/``schedule_task`` returned for this run."""
        return self.owlclaw.task_id

    @property
    def task_name(self) -> str:
        return self.owlclaw.task_name

    @property
    def attempt_number(self) -> int:
        """1 on the first attempt."""
        return self.owlclaw.attempt

    @property
    def retry_count(self) -> int:
        return self.owlclaw.attempt - 1

    @property
    def is_cancelled(self) -> bool:
        return self.owlclaw.cancelled

    async def aio_sleep_for(self, duration: timedelta | float) -> None:
        """Sleep durably: on Hatchet the wait survives a worker restart.

        :raises NotSupportedError: the handler was declared with ``task``, not ``durable_task``.
        """
        if not self._durable:
            raise NotSupportedError(
                f"ctx.aio_sleep_for() needs a durable task: declare {self.task_name!r} with "
                "@client.durable_task(...) instead of @client.task(...)"
            )
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        await self.owlclaw.sleep(seconds)

    def __repr__(self) -> str:
        return f"HatchetTaskContext(workflow_run_id={self.workflow_run_id!r}, task_name={self.task_name!r})"


def takes_input_and_ctx(handler: Callable[..., Any]) -> bool:
    """Whether ``handler(input, ctx)`` binds (True when the signature cannot be read)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


def _wrong_signature(handler: Callable[..., Any]) -> TypeError:
    name = getattr(handler, "__name__", "handler")
    return TypeError(
        f"{name}{inspect.signature(handler)} cannot take (input, ctx): Hatchet calls every task "
        f"function with (input, ctx), so declare it as `async def {name}(input, ctx)`"
    )


def wrap_handler(handler: Callable[..., Any], *, durable: bool) -> Callable[[Any, TaskContext], Any]:
    """``handler(input, HatchetTaskContext)`` as an owlclaw task; async stays async, sync stays sync
    (owlclaw runs sync tasks in a thread)."""
    fits = takes_input_and_ctx(handler)
    if inspect.iscoroutinefunction(handler):

        async def run_async(payload: Any, ctx: TaskContext) -> Any:
            if not fits:  # the run fails, as it does on hatchet-sdk, but says what to change
                raise _wrong_signature(handler)
            return await handler(payload, HatchetTaskContext(ctx, durable=durable))

        task: Callable[[Any, TaskContext], Any] = run_async
    else:

        def run_sync(payload: Any, ctx: TaskContext) -> Any:
            if not fits:
                raise _wrong_signature(handler)
            return handler(payload, HatchetTaskContext(ctx, durable=durable))

        task = run_sync
    task.__name__ = getattr(handler, "__name__", "handler")
    task.__qualname__ = getattr(handler, "__qualname__", task.__name__)
    task.__doc__ = handler.__doc__
    return task
