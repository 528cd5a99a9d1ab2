"""The CLI run in-process against a memory scheduler, for the CLI's unit tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler.cli import main_async

Cap = pytest.CaptureFixture[str]


async def cli(sched: MemoryScheduler, capsys: Cap, *argv: str) -> tuple[int, Any, str]:
    """Run a command with --json; returns (exit code, parsed stdout or None, stderr)."""
    code = await main_async([*argv, "--json"], sched)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err
