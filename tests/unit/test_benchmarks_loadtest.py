"""The load-tester benchmark's parsing of Hatchet's log and its CPU readings from /proc."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from benchmarks.cpu import tree_cpu
from benchmarks.loadtest import _GoLog, go_duration

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45.1ms", 0.0451), ("850µs", 0.00085), ("2.000123s", 2.000123), ("1m2.5s", 62.5), ("120ns", 1.2e-7)],
)
def test_go_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "12", "3x", "1.5ms garbage"])
def test_a_string_that_is_not_a_go_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        go_duration(text)


def test_the_log_gives_each_run_its_latency_once_and_counts_repeats() -> None:
    lines = [
        "11:00:00Z \x1b[32mINF\x1b[0m emitting with 50 concurrent push workers (amountPerSecond=2)",
        "2026-11-30T11:00:00Z INF pushing event 1 to load-test:event",
        "2026-11-30T11:00:00Z INF pushed event 1 to load-test:event took 3.2ms",
        "2026-11-30T11:00:00Z INF pushed event 2 to load-test:event took 4ms",
        "2026-11-30T11:00:00Z INF executing 1 took 12.5ms service=loadtest",
        "2026-11-30T11:00:00Z INF executing 2 took 1.25s",
        "2026-11-30T11:00:01Z INF executing 2 took 3s",
        "2026-11-30T11:00:01Z INF done emitting events due to timer",
    ]
    log = _GoLog(pids={}, go_pid=os.getpid())
    log.read(io.BytesIO("\n".join(lines).encode()))
    assert log.done_at is None, "pushes may still be in flight after the emitting loop's last line"
    lines.append("2026/11/30 11:00:01 \u2139\ufe0f pushed per event key: {")
    log = _GoLog(pids={}, go_pid=os.getpid())
    log.read(io.BytesIO("\n".join(lines).encode()))
    assert log.emit_at is not None and log.done_at is not None
    assert log.pushed == 2
    assert log.took == pytest.approx({1: 0.0125, 2: 1.25})  # a repeat keeps the first start
    assert log.executions == 3
    assert "go" in log.cpu_before


# spends 0.3 s of CPU, says so, then waits (alive) until its stdin closes
_BURN = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.read()"
)
# a parent of its own, so that no other descendant of the test process (one
# that ends meanwhile) moves the readings: starts the burner, says when it has
# burnt, reaps it on a line from stdin, says so, then waits until stdin closes
_PARENT = (
    "import subprocess, sys\n"
    "pipe = subprocess.PIPE\n"
    f"child = subprocess.Popen([sys.executable, '-c', {_BURN!r}], stdin=pipe, stdout=pipe)\n"
    "print(child.stdout.readline().decode().strip(), child.pid, flush=True)\n"
    "sys.stdin.readline()\n"
    "child.stdin.close()\n"
    "child.wait()\n"
    "print('reaped', flush=True)\n"
    "sys.stdin.read()"
)
TICK = 0.02  # /proc counts in clock ticks: a reaped child's sum may round a tick or two apart


def test_a_childs_cpu_counts_in_its_parents_tree_alive_and_reaped() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert parent.stdin is not None and parent.stdout is not None
    try:
        said, child_pid = parent.stdout.readline().split()  # bounded: the child burns 0.3 s, then prints
        assert said == b"burnt"
        alive = tree_cpu(parent.pid)
        own = tree_cpu(int(child_pid))
        assert own >= 0.29, f"the child's own reading is {own} s"
        assert alive >= own, f"the live child's CPU is missing from its parent's tree: {alive} s < {own} s"
        parent.stdin.write(b"reap\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == b"reaped\n"
        # reaped: its time moved into the parent's cutime/cstime, so the tree's sum did not drop
        reaped = tree_cpu(parent.pid)
        assert reaped >= alive - TICK, (
            f"the reaped child's CPU left its parent's tree: {alive} s, then {reaped} s"
        )
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)


def test_a_process_that_is_gone_reads_zero() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert tree_cpu(child.pid) == 0.0
