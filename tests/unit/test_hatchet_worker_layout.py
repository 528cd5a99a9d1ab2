"""The worker layout without an engine: which SDK workers a process makes,
with which slots, and that a signal reaches both (docs/hatchet.md "Worker layout")."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from owlclaw.backends.hatchet.layout import DURABLE_SUFFIX, Layout, plan
from owlclaw.scheduler.kit import make_options
from owlclaw.scheduler.polling import poll_until_blocking


class FakeWorker:
    """What ``Layout`` uses of the SDK's ``Worker``: made by ``client.worker``,
    it installs its signal handlers at once, as the SDK's does."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name, self.kwargs = name, kwargs
        self.signals: list[tuple[int, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self.on_signal)

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append((signum, threading.current_thread().name))
        if self._loop is not None:
            self._loop.stop()

    def start(self) -> None:  # the SDK's: a loop of its own until a signal stops it
        self._loop = asyncio.new_event_loop()
        self._loop.run_forever()
        raise SystemExit(0)


class FakeClient:
    def __init__(self) -> None:
        self.made: list[FakeWorker] = []

    def worker(self, name: str, **kwargs: Any) -> FakeWorker:
        self.made.append(FakeWorker(name, **kwargs))
        return self.made[-1]


@pytest.fixture(autouse=True)
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _wait_running(worker: FakeWorker) -> None:
    """Until the worker's loop runs (its start() in its thread), at most 5 s."""
    poll_until_blocking(
        lambda: worker._loop is not None and worker._loop.is_running(),
        lambda running: running,
        timeout=5,
        interval=0.01,
        what="the durable worker's loop to run",
    )


def _tasks(*kinds: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    async def fn(payload: Any, ctx: Any) -> None:
        return None

    tasks = {f"t{i}": make_options(fn, f"t{i}", durable=durable) for i, durable in enumerate(kinds)}
    return tasks, {name: f"workflow-{name}" for name in tasks}


def test_plan_splits_ordinary_and_durable_tasks() -> None:
    tasks, standalones = _tasks(False, True, False)
    assert plan(tasks, standalones) == (["workflow-t0", "workflow-t2"], ["workflow-t1"])


def test_an_app_without_durable_tasks_declares_no_durable_slots() -> None:
    client = FakeClient()
    layout = Layout(client, "w", 50, 50, plan(*_tasks(False, False)))  # type: ignore[arg-type]
    assert [(w.name, w.kwargs) for w in client.made] == [
        ("w", {"slots": 50, "workflows": ["workflow-t0", "workflow-t1"]})
    ]
    assert layout.names == ["w"]


def test_an_app_of_durable_tasks_only_declares_only_durable_slots() -> None:
    client = FakeClient()
    Layout(client, "w", 50, 20, plan(*_tasks(True)))  # type: ignore[arg-type]
    assert [(w.name, w.kwargs) for w in client.made] == [
        ("w", {"durable_slots": 20, "workflows": ["workflow-t0"]})
    ]


def test_an_app_with_both_gets_a_durable_worker_beside_and_a_signal_reaches_both() -> None:
    client = FakeClient()
    layout = Layout(client, "w", 50, 20, plan(*_tasks(False, True)))  # type: ignore[arg-type]
    main, side = client.made
    assert (main.name, main.kwargs) == ("w", {"slots": 50, "workflows": ["workflow-t0"]})
    assert (side.name, side.kwargs) == (
        "w" + DURABLE_SUFFIX,
        {"durable_slots": 20, "workflows": ["workflow-t1"]},
    )
    assert layout.names == ["w", "w" + DURABLE_SUFFIX]

    layout.start_side()
    _wait_running(side)
    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]
    assert main.signals == [(signal.SIGTERM, "MainThread")], "the main worker's handler, in this thread"
    assert layout.stop_side(10), "the durable worker stopped on the signal, with status 0"
    assert side.signals == [(signal.SIGTERM, "owlclaw-hatchet-durable-worker")], "run on its own loop"


def test_the_durable_worker_is_stopped_when_the_main_one_returns_without_a_signal() -> None:
    client = FakeClient()
    layout = Layout(client, "w", 5, 5, plan(*_tasks(False, True)))  # type: ignore[arg-type]
    side = client.made[1]
    layout.start_side()
    _wait_running(side)
    assert layout.stop_side(10)
    assert side.signals == [(signal.SIGTERM, "owlclaw-hatchet-durable-worker")]


def test_a_durable_worker_that_stops_on_its_own_stops_the_process() -> None:
    client = FakeClient()
    layout = Layout(client, "w", 5, 5, plan(*_tasks(False, True)))  # type: ignore[arg-type]
    main, side = client.made
    side.start = lambda: None  # type: ignore[method-assign]  # its listener died: start() returns
    layout.start_side()
    # SIGTERM to this process: the installed handler passes it to the main worker, here
    poll_until_blocking(
        lambda: list(main.signals),
        lambda seen: seen == [(signal.SIGTERM, "MainThread")],
        timeout=5,
        interval=0.01,
        what="the main worker to get SIGTERM (signals seen)",
    )
    assert layout.stop_side(5)
