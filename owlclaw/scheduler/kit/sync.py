"""Sync task functions: their threads, their cancellation, and a blocking scheduler.

A worker runs sync task functions (and sync ``on_failure`` callbacks) on a
:class:`SyncExecutor` of its own, with as many threads as the worker has
slots, so a hung sync task holds one slot as a hung async task does, and
never starves the others beyond the slot count.

Python cannot stop a thread. A sync attempt that times out or is cancelled
sees ``ctx.cancelled`` become True (cooperative code stops there), its
attempt is reported at once, its late result is discarded, and its thread
stays busy (a slot the worker does not hand out) until the function returns.

Inside a sync task ``ctx.sync_scheduler`` is the scheduler with blocking
methods (:class:`BlockingScheduler`): each call runs on the worker's event
loop and waits at most ``SYNC_CALL_TIMEOUT`` seconds. Awaiting
``ctx.scheduler`` on an event loop of the task's own (``asyncio.run(...)``)
raises ``NotSupportedError`` naming it (:func:`check_not_in_sync_task`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from owlclaw.scheduler.errors import NotSupportedError, WaitTimeoutError

if TYPE_CHECKING:
    from datetime import datetime

    from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskInfo, TaskState
    from owlclaw.scheduler.protocol import Scheduler

__all__ = [
    "SYNC_CALL_TIMEOUT",
    "BlockingScheduler",
    "SyncExecutor",
    "TaskExit",
    "call_sync",
    "check_not_in_sync_task",
    "hold_sync_threads",
    "release_sync_threads",
    "task_exit",
]

log = logging.getLogger("owlclaw.scheduler.runs")

T = TypeVar("T")

#: Longest a ``ctx.sync_scheduler`` call waits for the event loop, in seconds
#: (``wait_for_task`` waits its own timeout on top).
SYNC_CALL_TIMEOUT = 60.0

_HELD: contextvars.ContextVar[list[asyncio.Future[Any]] | None] = contextvars.ContextVar(
    "owlclaw_sync_threads", default=None
)


class _Local(threading.local):
    scheduler: object = None  # the scheduler whose sync task this thread runs (a class default: no miss)


_local = _Local()


class TaskExit(Exception):
    """A ``SystemExit`` (or another ``BaseException`` that is not an
    ``Exception``) raised by a task, as an ordinary failure of its attempt.
    Its subclasses are named after the original type, so the run's error reads
    ``"SystemExit: 3"`` on every backend; ``__cause__`` is the original."""


_EXIT_TYPES: dict[type[BaseException], type[TaskExit]] = {}
_PASS_THROUGH = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


def task_exit(exc: BaseException) -> BaseException:
    """``exc`` as the attempt's failure: an ``Exception``, cancellation and
    ``KeyboardInterrupt`` as they are, anything else (``SystemExit``) as a
    :class:`TaskExit` of the same name and arguments."""
    if isinstance(exc, (Exception, *_PASS_THROUGH)):
        return exc
    kind = type(exc)
    if kind not in _EXIT_TYPES:
        _EXIT_TYPES[kind] = type(kind.__name__, (TaskExit,), {"__module__": __name__})
    error = _EXIT_TYPES[kind](*exc.args)
    error.__cause__ = exc
    return error


class SyncExecutor(concurrent.futures.Executor):
    """At most ``threads`` calls at once, on daemon threads started as needed.

    A call that never returns keeps its thread; ``shutdown`` waits a bounded
    time and leaves such threads behind (as daemons, they never hold up the
    interpreter's exit, unlike ``ThreadPoolExecutor``'s).
    """

    def __init__(self, threads: int, name: str = "owlclaw-sync") -> None:
        if threads < 1:
            raise ValueError(f"a SyncExecutor needs at least one thread, got {threads}")
        self.threads = threads
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._busy = 0  # calls submitted and not yet returned (queued ones included)
        self._closed = False

    @property
    def busy(self) -> int:
        """Calls submitted whose function has not returned yet (running or queued)."""
        return self._busy

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this SyncExecutor is shut down: its worker stopped")
            self._busy += 1
            if self._busy > len(self._workers) and len(self._workers) < self.threads:
                worker = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._workers)}", daemon=True
                )
                self._workers.append(worker)
                worker.start()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args, kwargs = item
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args, **kwargs))
                    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the task's failure
                        future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy -= 1
                del item, future, fn, args, kwargs

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, timeout: float = 10.0) -> None:
        """Take no more calls; queued ones are cancelled if ``cancel_futures``.
        With ``wait``, wait up to ``timeout`` seconds for the threads to end;
        a thread still running a call after that is logged and left."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
                    with self._lock:
                        self._busy -= 1
        for _ in workers:
            self._queue.put(None)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(deadline - time.monotonic(), 0.0))
        stuck = [w.name for w in workers if w.is_alive()]
        if stuck:
            log.warning(
                "%d sync task thread(s) still running at shutdown (%s); left behind as daemons",
                len(stuck),
                ", ".join(stuck),
            )

    async def aclose(self, timeout: float) -> None:
        """``shutdown`` from the event loop, without blocking it."""
        await asyncio.to_thread(self.shutdown, True, cancel_futures=True, timeout=timeout)


def _in_task_thread(owner: Any, func: Callable[..., T], args: tuple[Any, ...]) -> T:
    _local.scheduler = owner
    try:
        return func(*args)
    finally:
        _local.scheduler = None


async def call_sync(
    executor: concurrent.futures.Executor | None,
    func: Callable[..., T],
    *args: Any,
    owner: Any = None,
    on_cancel: Callable[[], None] | None = None,
) -> T:
    """``func(*args)`` on ``executor`` (the loop's default one if None), in a
    copy of this context, from the event loop. If the awaiting task is
    cancelled (a timeout, ``cancel_task``), ``on_cancel`` runs (it sets the
    attempt's ``ctx.cancelled``), the call's late result is discarded, and
    the thread stays busy until ``func`` returns; between
    :func:`hold_sync_threads` and :func:`release_sync_threads` the worker
    waits for it before the attempt's slot is free."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = context.run  # the function runs in this task's context, as asyncio.to_thread does
    thread_future = loop.run_in_executor(executor, call, _in_task_thread, owner, func, args)
    held = _HELD.get()
    if held is not None:
        held.append(thread_future)
    try:
        return await asyncio.shield(thread_future)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        thread_future.add_done_callback(_discard)
        raise


class Held:
    """The sync calls' threads started since ``hold_sync_threads``; the
    ``contextvars`` token that stops holding them."""

    __slots__ = ("threads", "token")

    def __init__(self) -> None:
        self.threads: list[asyncio.Future[Any]] = []
        self.token = _HELD.set(self.threads)


def hold_sync_threads() -> Held:
    """From here, this task's sync calls (``call_sync``) are held: a worker
    that runs an attempt between ``hold_sync_threads`` and awaiting what
    ``release_sync_threads`` gives counts a timed-out or cancelled sync
    attempt's thread as a busy slot until it returns, although the attempt
    was reported at once."""
    return Held()


def release_sync_threads(held: Held) -> Awaitable[Any] | None:
    """Stop holding; None, or what to await until the held threads return."""
    _HELD.reset(held.token)
    if held.threads and (pending := [thread for thread in held.threads if not thread.done()]):
        return asyncio.wait(pending)
    return None


def _discard(future: asyncio.Future[Any]) -> None:
    """Read a late result so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


def check_not_in_sync_task(scheduler: object) -> None:
    """Raise if this thread runs a sync task of ``scheduler``: awaiting its
    methods there means an event loop of the task's own, on which the run
    would be started and left RUNNING when that loop closes."""
    if _local.scheduler is scheduler:
        raise NotSupportedError(
            "a sync task cannot await ctx.scheduler (asyncio.run() or another event loop of its own "
            "would leave the runs it starts stuck): call the blocking ctx.sync_scheduler instead, "
            "e.g. ctx.sync_scheduler.schedule_task(...), or make the task async"
        )


async def _in_context(context: contextvars.Context, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    for var, value in context.items():
        var.set(value)
    return await make()


class BlockingScheduler:
    """``ctx.sync_scheduler``: the scheduler's methods, blocking, for sync tasks.

    Each call runs the async method on the worker's event loop
    (``asyncio.run_coroutine_threadsafe``) and waits at most ``timeout``
    seconds (``WaitTimeoutError`` after that). Calling it on that event loop
    itself would deadlock, so it raises ``NotSupportedError`` there: async
    code awaits ``ctx.scheduler``.
    """

    def __init__(
        self, scheduler: Scheduler, loop: asyncio.AbstractEventLoop, timeout: float = SYNC_CALL_TIMEOUT
    ) -> None:
        self.scheduler = scheduler
        self._loop = loop
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"BlockingScheduler({self.scheduler!r})"

    def _call(self, what: str, make: Callable[[], Coroutine[Any, Any, T]], extra: float = 0.0) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise NotSupportedError(
                f"ctx.sync_scheduler.{what}() blocks, and here it would block the event loop it needs "
                f"(a deadlock): in async code use `await ctx.scheduler.{what}(...)`"
            )
        if self._loop.is_closed():
            raise NotSupportedError(f"ctx.sync_scheduler.{what}(): the worker's event loop is closed")
        context = contextvars.copy_context()
        future = asyncio.run_coroutine_threadsafe(_in_context(context, make), self._loop)
        try:
            return future.result(self.timeout + extra)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeoutError(
                f"ctx.sync_scheduler.{what}() got no answer from the worker's event loop within "
                f"{self.timeout + extra:g}s; is that loop blocked?"
            ) from None

    def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        return self._call("run_task", lambda: self.scheduler.run_task(task_name, payload, priority=priority))

    def schedule_task(self, task_name: str, payload: Any = None, **when: Any) -> str:
        """Takes ``delay_seconds=``/``at=``/``priority=`` as ``Scheduler.schedule_task``."""
        return self._call("schedule_task", lambda: self.scheduler.schedule_task(task_name, payload, **when))

    def cancel_task(self, task_id: str) -> bool:
        return self._call("cancel_task", lambda: self.scheduler.cancel_task(task_id))

    def get_task_status(self, task_id: str) -> TaskInfo:
        return self._call("get_task_status", lambda: self.scheduler.get_task_status(task_id))

    def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        return self._call("list_scheduled_tasks", lambda: self.scheduler.list_scheduled_tasks(task_name))

    def list_tasks(
        self, task_name: str | None = None, *, states: Iterable[TaskState] | None = None, limit: int = 100
    ) -> list[TaskInfo]:
        return self._call(
            "list_tasks", lambda: self.scheduler.list_tasks(task_name, states=states, limit=limit)
        )

    def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        return self._call(
            "wait_for_task", lambda: self.scheduler.wait_for_task(task_id, timeout), extra=timeout
        )

    def add_cron(self, task_name: str, expression: str, payload: Any = None, *, timezone: str = "UTC") -> str:
        return self._call(
            "add_cron", lambda: self.scheduler.add_cron(task_name, expression, payload, timezone=timezone)
        )

    def remove_cron(self, cron_id: str) -> None:
        self._call("remove_cron", lambda: self.scheduler.remove_cron(cron_id))

    def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        return self._call("list_crons", lambda: self.scheduler.list_crons(task_name))

    def add_schedule(self, task_name: str, payload: Any = None, **rule: Any) -> str:
        """Takes ``cron=``/``every=`` and the policies as ``Scheduler.add_schedule``."""
        return self._call("add_schedule", lambda: self.scheduler.add_schedule(task_name, payload, **rule))

    def list_schedules(self, task_name: str | None = None) -> list[ScheduleInfo]:
        return self._call("list_schedules", lambda: self.scheduler.list_schedules(task_name))

    def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        return self._call("get_schedule", lambda: self.scheduler.get_schedule(schedule_id))

    def update_schedule(self, schedule_id: str, **changes: Any) -> None:
        self._call("update_schedule", lambda: self.scheduler.update_schedule(schedule_id, **changes))

    def remove_schedule(self, schedule_id: str) -> None:
        self._call("remove_schedule", lambda: self.scheduler.remove_schedule(schedule_id))

    def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        self._call("pause_schedule", lambda: self.scheduler.pause_schedule(schedule_id, note))

    def resume_schedule(self, schedule_id: str) -> None:
        self._call("resume_schedule", lambda: self.scheduler.resume_schedule(schedule_id))

    def skip_schedule(self, schedule_id: str, count: int = 1) -> None:
        self._call("skip_schedule", lambda: self.scheduler.skip_schedule(schedule_id, count))

    def preview_schedule(
        self, schedule_id: str, start: datetime, end: datetime, *, limit: int = 1000
    ) -> list[datetime]:
        return self._call(
            "preview_schedule", lambda: self.scheduler.preview_schedule(schedule_id, start, end, limit=limit)
        )

    def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        return self._call(
            "backfill_schedule", lambda: self.scheduler.backfill_schedule(schedule_id, start, end)
        )
