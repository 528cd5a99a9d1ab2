"""How a worker process lays out its SDK workers: ordinary tasks and durable tasks apart.

A Hatchet worker that declares durable slots drains ordinary runs at about half
the pace of one that declares only ordinary slots (docs/hatchet.md, "Worker
layout"). So a process serves its ordinary tasks on an SDK worker with
ordinary slots only and, if the app has durable tasks, its durable tasks on a
second SDK worker (``<name>-durable``) with durable slots only. The SDK's
worker owns an event loop and blocks in it: the ordinary one runs in the main
thread (which the SDK's signal handling needs), the durable one in a thread
of its own, and a signal reaches both.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from hatchet_sdk import Hatchet

from owlclaw.scheduler.models import TaskOptions

__all__ = ["DURABLE_SUFFIX", "Layout", "plan"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

DURABLE_SUFFIX = "-durable"  # the durable worker's name: the ordinary one's plus this
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_Handler = Callable[[int, FrameType | None], Any]


def plan(
    tasks: Mapping[str, TaskOptions], standalones: Mapping[str, Any], internal: Sequence[Any] = ()
) -> tuple[list[Any], list[Any]]:
    """The SDK workflows of the ordinary tasks and of the durable tasks;
    owlclaw's ``internal`` workflows (the schedule link) are ordinary ones."""
    ordinary = [standalones[name] for name, options in tasks.items() if not options.durable]
    ordinary += internal
    durable = [standalones[name] for name, options in tasks.items() if options.durable]
    return ordinary, durable


class Layout:
    """The SDK workers of one process: the main one (ordinary tasks, or the
    durable ones if the app has no other) and, if both kinds exist, a durable
    one beside it in a thread."""

    def __init__(self, client: Hatchet, name: str, slots: int, durable_slots: int, workflows: Any) -> None:
        ordinary, durable = workflows
        self._thread: threading.Thread | None = None
        self._side: Any = None
        self._signalled = threading.Event()  # a shutdown signal reached this process
        self._side_handlers: dict[int, _Handler] = {}
        self.side_code: object = 0  # the durable worker's exit status (the SDK's sys.exit)
        if not ordinary:
            self.main = client.worker(name, durable_slots=durable_slots, workflows=durable)
            return
        self.main = client.worker(name, slots=slots, workflows=ordinary)
        if durable:
            main_handlers = _current_handlers()
            side_name = name + DURABLE_SUFFIX
            self._side = client.worker(side_name, durable_slots=durable_slots, workflows=durable)
            self._side_handlers = _current_handlers()
            self._install(main_handlers)

    @property
    def names(self) -> list[str]:
        return [w.name for w in (self.main, self._side) if w is not None]

    def _install(self, main_handlers: dict[int, _Handler]) -> None:
        """One handler per signal that passes it to both SDK workers: the main
        worker's own handler runs here, the durable worker's on its loop (the
        SDK's handler touches its loop, which is not thread-safe)."""
        for sig in _SIGNALS:
            main_h = main_handlers.get(sig)

            def handler(signum: int, frame: FrameType | None, main_h: Any = main_h) -> None:
                self._signalled.set()
                self._to_side(signum)
                if main_h is not None:
                    main_h(signum, frame)

            signal.signal(sig, handler)

    def _to_side(self, signum: int) -> None:
        """Hand ``signum`` to the durable worker's SDK handler, on its own loop."""
        handler = self._side_handlers.get(signum)
        loop = getattr(self._side, "_loop", None)  # the SDK's loop, made when its worker starts
        if handler is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(handler, signum, None)

    def start_side(self) -> None:
        """Start the durable worker in its thread (if there is one)."""
        if self._side is None:
            return
        side = self._side

        def run() -> None:
            if self._signalled.is_set():  # a signal came before its loop existed
                return
            try:
                side.start()
            except SystemExit as exc:  # the SDK ends its start() with sys.exit
                self.side_code = exc.code
            except BaseException:
                self.side_code = 1
                log.exception("the durable worker %s stopped with an error", side.name)
            if not self._signalled.is_set():
                # its listener died: stop the whole process, so its supervisor restarts both
                log.error("the durable worker %s stopped on its own; stopping this process", side.name)
                os.kill(os.getpid(), signal.SIGTERM)

        self._thread = threading.Thread(target=run, name="owlclaw-hatchet-durable-worker", daemon=True)
        self._thread.start()

    def stop_side(self, timeout: float) -> bool:
        """Once the main worker has returned: tell the durable worker to drain
        (unless a signal already did) and wait at most ``timeout`` s for it;
        True if it ended with status 0."""
        if self._thread is None:
            return True
        if not self._signalled.is_set():
            self._signalled.set()
            self._to_side(signal.SIGTERM)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the durable worker %s did not stop within %gs; leaving it", self._side.name, timeout)
            return False
        return self.side_code in (0, None)


def _current_handlers() -> dict[int, _Handler]:
    """The SDK's worker installs its signal handlers when it is made: read them back."""
    found: dict[int, _Handler] = {}
    for sig in _SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            found[sig] = handler
    return found
