"""What a complete ``owlclaw-scheduler demo`` prints: every step of the tour,
each as the row of the run that showed it, before the closing line."""

from __future__ import annotations

import re

from owlclaw.scheduler.demo import TOUR

# "  1.0s  demo_agent      4fbd8095  succeeded attempts=1  'step 2: next run in 1s'"
_ROW = re.compile(r"^\s*[\d.]+s  (\w+)\s+([0-9a-f]{8})  (\w+)\s+attempts=(\d+)(?:  (.*))?$")
_CANCEL = re.compile(r"^\s*[\d.]+s  cancel_task ([0-9a-f]{8}): True, now (\w+)$")


def assert_full_tour(out: str) -> None:
    """Every step of ``TOUR`` has a succeeded row with its result, the cancel
    step its line, and the output ends with "tour complete" after all of them."""
    lines = out.rstrip().splitlines()
    assert lines and lines[-1].endswith("  tour complete"), f"the demo did not complete:\n{out}"
    rows = [m.groups() for m in map(_ROW.match, lines) if m]
    for label, task, result in TOUR:
        want = [r for r in rows if (r[0], r[2], r[4]) == (task, "succeeded", repr(result))]
        assert want, f"no succeeded row of {task} with {result!r} (the {label!r} step):\n{out}"
    retried = [r for r in rows if (r[0], r[2]) == ("demo_flaky", "succeeded")]
    assert [r[3] for r in retried] == ["3"], f"retries: the run should succeed on attempt 3:\n{out}"
    cancels = [m.groups() for m in map(_CANCEL.match, lines) if m]
    assert len(cancels) == 1, f"want one cancel_task line that returned True:\n{out}"
    doomed, state = cancels[0]
    # a status read right after the cancel may lag on a real engine: a later row shows it then
    assert state == "cancelled" or (doomed, "cancelled") in {(r[1], r[2]) for r in rows}, (
        f"the cancelled run {doomed} is never shown cancelled:\n{out}"
    )
