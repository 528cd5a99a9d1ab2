"""Item 4 of the OwlClaw issue: after the sync ``connect()``, the memory
backend runs on its own (an app whose only scheduling is a cron); nothing
here calls the client while it waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from owlclaw_shapes import (
    MONDAY_0800,
    CronRegistryShape,
)

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig
from owlclaw.scheduler.polling import poll_until, poll_until_blocking


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("HATCHET_", "OWLCLAW_")):
            monkeypatch.delenv(name)


def test_crons_declared_before_and_after_a_sync_connect_run_on_their_own() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))
    before = CronRegistryShape({"before": ("* * * * * *", 0)})
    before.start(client)
    client.connect()  # outside any event loop, as a script or a sync app does
    after = CronRegistryShape({"after": ("* * * * * *", 0)})
    after.start(client)  # CronTriggerRegistry.start() runs after connect()
    try:
        poll_until_blocking(lambda: len(before.fired), lambda n: n >= 2, timeout=15, what="the 'before' cron")
        poll_until_blocking(lambda: len(after.fired), lambda n: n >= 2, timeout=15, what="the 'after' cron")
    finally:
        client.disconnect()
    assert {e for e, _ in before.fired + after.fired} == {"before", "after"}


async def test_crons_run_on_their_own_after_connect_in_a_running_loop() -> None:
    client = HatchetClient(HatchetConfig(backend="memory"))
    registry = CronRegistryShape({"tick": ("* * * * * *", 0)})
    registry.start(client)
    client.connect()  # as app.start() does it, inside the app's loop
    late = CronRegistryShape({"late": ("* * * * * *", 0)})
    late.start(client)
    try:
        await poll_until(lambda: len(registry.fired), lambda n: n >= 2, timeout=15, what="the tick cron")
        await poll_until(lambda: len(late.fired), lambda n: n >= 1, timeout=15, what="the late cron")
    finally:
        client.disconnect()
        await asyncio.sleep(0)


def test_a_cron_only_app_on_a_virtual_clock_runs_once_time_moves() -> None:
    """A virtual clock moves only with ``advance()``: the first awaited call
    (``advance`` of the scheduler) starts the worker in its loop."""
    memory = MemoryScheduler(clock=VirtualClock(start=MONDAY_0800))
    client = HatchetClient(HatchetConfig(backend="memory"), scheduler=memory)
    client.connect()
    registry = CronRegistryShape({"daily": ("0 9 * * *", 0)})
    registry.start(client)

    async def a_day() -> None:
        await client.list_scheduled_tasks()
        await memory.advance(24 * 3600)

    asyncio.run(a_day())
    assert [e for e, _ in registry.fired] == ["daily"]
    client.disconnect()


_WORKER_SCRIPT = """
import sys
from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig

client = HatchetClient(HatchetConfig(backend="memory"))
client.connect()

@client.task(name="cron_tick", cron="* * * * * *", retries=0)
def tick(input, ctx):
    with open(sys.argv[1], "a") as out:
        out.write("tick\\n")

client.start_worker()
"""


def test_start_worker_on_memory_serves_the_crons_until_sigterm(tmp_path: Path) -> None:
    """OwlClaw's worker process: connect(), declare, start_worker() (blocks)."""
    script, ticks = tmp_path / "worker.py", tmp_path / "ticks.txt"
    script.write_text(_WORKER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "OWLCLAW_"))}
    proc = subprocess.Popen([sys.executable, str(script), str(ticks)], env=env, stderr=subprocess.PIPE)
    try:
        poll_until_blocking(
            lambda: ticks.read_text().count("tick") if ticks.exists() else 0,
            lambda n: n >= 2,
            timeout=30,
            what="two ticks of the worker's cron",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
