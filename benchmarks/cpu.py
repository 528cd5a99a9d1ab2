"""CPU time spent by a process and its descendants, read from ``/proc`` (Linux only).

``tree_cpu(pid)`` sums utime + stime + cutime + cstime over ``pid`` and every live
descendant. A child that exits moves its time into its parent's cutime/cstime
once reaped, so the sum stays continuous; the difference of two readings is the
CPU the tree spent between them (PostgreSQL's backends and the worker's SDK
processes included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cpu_delta", "snapshot", "tree_cpu"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, seconds of CPU incl. reaped children) of one process, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / _TICK


def tree_cpu(pid: int) -> float:
    """Seconds of CPU spent by ``pid`` and its live descendants (0.0 if ``pid`` is gone)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                stats[int(entry.name)] = found
    if pid not in stats:
        return 0.0
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats[current][1]
        todo.extend(children.get(current, ()))
    return total


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """``tree_cpu`` of each named process."""
    return {name: tree_cpu(pid) for name, pid in pids.items()}


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Seconds of CPU each named process spent between two snapshots."""
    return {name: after[name] - before[name] for name in before if name in after}
