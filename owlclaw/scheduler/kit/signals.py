"""A worker's life in its own process: serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from owlclaw.scheduler.protocol import Scheduler

__all__ = ["serve_until_signal"]


async def serve_until_signal(scheduler: Scheduler) -> None:
    """Connect, start the worker, and on SIGTERM or SIGINT stop it (runs in
    flight finish first) and disconnect."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with scheduler:
        await scheduler.start_worker()
        logging.getLogger("owlclaw.scheduler").info(
            "%s worker running %d tasks; SIGTERM drains and stops",
            scheduler.backend_name,
            len(scheduler.tasks),
        )
        await stop.wait()
        await scheduler.stop_worker()
