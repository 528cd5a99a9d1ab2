"""A bound on a Hatchet worker's drain after SIGTERM or SIGINT.

The SDK's worker drains on the first signal: it stops taking runs and waits
for the runs in flight, however long they take; a second signal makes it exit
at once (status 1). ``bound_shutdown`` wraps the handlers the SDK installed so
that the first signal also starts a timer which, after the grace period, sends
the signal again.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["bound_shutdown"]

log = logging.getLogger("owlclaw.scheduler.hatchet")


def bound_shutdown(grace_seconds: float) -> None:
    """Wrap the current SIGTERM and SIGINT handlers (call it after the SDK's
    worker is created, in the main thread)."""
    timer: list[threading.Timer] = []

    def force(signum: int) -> None:
        log.warning(
            "runs still in flight %gs after the shutdown signal "
            "(scheduler.hatchet.shutdown_grace_seconds); stopping now: the engine hands them "
            "to another worker",
            grace_seconds,
        )
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        inner: Any = signal.getsignal(sig)
        if not callable(inner):
            continue

        def handler(signum: int, frame: FrameType | None, inner: Any = inner) -> None:
            if not timer:
                timer.append(threading.Timer(grace_seconds, force, (signum,)))
                timer[0].daemon = True
                timer[0].start()
            inner(signum, frame)

        signal.signal(sig, handler)
