"""``owlclaw-scheduler demo --backend hatchet`` starts the locally built engine,
a worker process, and shows every feature on it."""

import os
import subprocess
import sys

import pytest

from tests.demo_tour import assert_full_tour

pytestmark = pytest.mark.integration


def test_demo_runs_on_the_local_engine(local_engine_binaries: None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "OWLCLAW_"))}
    result = subprocess.run(
        [sys.executable, "-m", "owlclaw.scheduler.cli", "demo", "--backend", "hatchet", "--timeout", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    out = result.stdout
    # the demo's own table first: it names the step it did not see
    assert result.returncode == 0, result.stdout[-4000:] + "\n--- stderr:\n" + result.stderr[-3000:]
    assert "backend=hatchet worker=external" in out
    assert "tour complete" in out, out
    for expected in (
        "'hello ada'",
        "'hello later'",
        "cancelled",
        "'ok on attempt 3'",
        "'step 3: done'",
        "'beat'",
    ):
        assert expected in out, out
    assert_full_tour(out)  # each step as the row of the run that showed it
