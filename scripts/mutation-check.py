#!/usr/bin/env python3
"""Hand-made mutations of the memory backend and the core, and whether the
unit and conformance suites (memory backend only) kill each one.

Each mutation is a small text patch to one source file, applied in a
throw-away copy of the checkout; the tests that should notice it run there
with a per-test timeout (a mutation that makes a test hang is killed by the
timeout, as it would be in CI). The script first runs every selection on the
unmutated copy: a selection that fails there proves nothing.

    python3 scripts/mutation-check.py            # all mutations
    python3 scripts/mutation-check.py -k limit   # those whose name contains "limit"

Prints one line per mutation, killed or SURVIVED (or STALE when its patch no
longer matches the source), and exits 1 unless every mutation was killed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CONFORMANCE = "tests/unit/test_memory_conformance.py"
PER_TEST_TIMEOUT = 60  # seconds; the slowest selected test takes ~6 s on an idle machine
PER_RUN_TIMEOUT = 300  # seconds for one pytest run, in case the timeout cannot fire


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, -k expressions


MUTATIONS = [
    Mutation(
        "schedule_task keeps the caller's payload (no JSON copy)",
        "owlclaw/scheduler/kit/base.py",
        "        data = check_payload(payload)\n        return await self._submit(options, data, due=due,",
        "        check_payload(payload)\n"
        "        data = payload\n"
        "        return await self._submit(options, data, due=due,",
        (MEMORY_CONFORMANCE, "-k", "payload"),
    ),
    Mutation(
        "run_task keeps a shallow copy of the caller's payload",
        "owlclaw/scheduler/kit/base.py",
        "        data = check_payload(payload)\n        return await self._submit(options, data, due=None,",
        "        check_payload(payload)\n"
        "        data = dict(payload)\n"
        "        return await self._submit(options, data, due=None,",
        (MEMORY_CONFORMANCE, "-k", "payload"),
    ),
    Mutation(
        "add_cron keeps the caller's payload",
        "owlclaw/scheduler/kit/base.py",
        '        data = check_payload(payload)\n        if timezone == "UTC":',
        '        data = check_payload(payload) and payload\n        if timezone == "UTC":',
        (MEMORY_CONFORMANCE, "-k", "payload"),
    ),
    Mutation(
        "the OwlClaw adapter names QUEUED 'scheduled'",
        "owlclaw/integrations/hatchet_client/_bridge.py",
        'TaskState.QUEUED: "queued",',
        'TaskState.QUEUED: "scheduled",',
        ("tests/unit/test_owlclaw_adapter.py",),
    ),
    Mutation(
        "started_at is reset at each retry",
        "owlclaw/backends/memory/backend.py",
        "            if (mimic.hatchet and mimic.started(run)) or run.started_at is None:\n",
        "            if (mimic.hatchet and mimic.started(run)) or True:\n",
        (MEMORY_CONFORMANCE, "-k", "started_at or backoff"),
    ),
    Mutation(
        "list_tasks ignores its limit",
        "owlclaw/backends/memory/runs.py",
        "return [r.info() for r in found[:limit]]",
        "return [r.info() for r in found]",
        (MEMORY_CONFORMANCE, "-k", "list_tasks"),
    ),
    Mutation(
        "the concurrency limit lets one run too many through",
        "owlclaw/backends/memory/ready.py",
        "self._in_group.get(group, 0) >= limit",
        "self._in_group.get(group, 0) > limit",
        (MEMORY_CONFORMANCE, "-k", "concurrency"),
    ),
    Mutation(
        "a run held by its concurrency limit goes straight back on the queue (the worker spins)",
        "owlclaw/backends/memory/ready.py",
        "heapq.heappush(self._held.setdefault(group, []), item)",
        "heapq.heappush(self._heap, item)",
        (MEMORY_CONFORMANCE, "-k", "concurrency"),
    ),
    Mutation(
        "an ended attempt releases no held run of its group (they wait forever)",
        "owlclaw/backends/memory/ready.py",
        "                heapq.heappush(self._pools[durable].heap, item)\n                break",
        "                break",
        (MEMORY_CONFORMANCE, "-k", "concurrency"),
    ),
    # our own
    Mutation(
        "a cron's next tick is pushed 5 seconds late",
        "owlclaw/backends/memory/runs.py",
        "self.push(cron.plan.next_after(after), CRON, cron.id)",
        "self.push(cron.plan.next_after(after) + timedelta(seconds=5), CRON, cron.id)",
        (MEMORY_CONFORMANCE, "-k", "cron_fires"),
    ),
    Mutation(
        "the CLI exits 1, not 6, when the engine cannot be reached",
        "owlclaw/scheduler/cli/__init__.py",
        "(SchedulerConnectionError, EXIT_UNREACHABLE),",
        "(SchedulerConnectionError, 1),",
        ("tests/unit/test_security.py", "-k", "cli_output"),
    ),
    Mutation(
        "the demo calls the tour complete without the retries step",
        "owlclaw/scheduler/demo.py",
        "missing = [label for label, task, result in TOUR if (task, result) not in done]",
        "missing = [label for label, task, result in TOUR if (task, result) not in done"
        " and task != 'demo_flaky']",
        ("tests/unit/test_cli.py", "-k", "demo_shows_each_feature"),
    ),
    Mutation(
        "list_tasks goes newest created first again, not newest due first (as on Hatchet)",
        "owlclaw/backends/memory/runs.py",
        "        found.sort(key=lambda r: r.scheduled_at, reverse=True)",
        "        pass",
        (MEMORY_CONFORMANCE, "-k", "newest_due"),
    ),
    Mutation(
        "durable attempts take ordinary slots again",
        "owlclaw/backends/memory/ready.py",
        "        durable = run.options.durable\n        self._pools[durable].used += 1\n",
        "        durable = False\n        self._pools[durable].used += 1\n",
        (MEMORY_CONFORMANCE, "-k", "durable_run_takes"),
    ),
    Mutation(
        "a result has no size limit",
        "owlclaw/scheduler/kit/payloads.py",
        "    if size > MAX_RESULT_BYTES:",
        "    if False:",
        (MEMORY_CONFORMANCE, "-k", "size_limit"),
    ),
    Mutation(
        "mimic='hatchet' retries exactly at the backoff",
        "owlclaw/backends/memory/mimic.py",
        "        return delay + RETRY_LATENESS_SECONDS",
        "        return delay",
        ("tests/unit/test_memory_mimic.py", "-k", "backoff_is_whole_seconds"),
    ),
    Mutation(
        "mimic='hatchet' orders runs of all tasks by priority",
        "owlclaw/backends/memory/ready.py",
        "        heapq.heappush(pool.heap, (0, seq, run))",
        "        heapq.heappush(pool.heap, (-run.priority, seq, run))",
        ("tests/unit/test_memory_mimic.py", "-k", "priority_orders_runs_of_one_task_only"),
    ),
]


def copy_checkout(into: Path) -> Path:
    """The working tree (uncommitted changes included), without .git and caches."""
    target = into / "repo"
    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"
        ),
    )
    return target


def run_tests(repo: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [
        sys.executable, "-m", "pytest", *tests, "-q", "-x", "-rf", "-p", "no:cacheprovider",
        f"--timeout={PER_TEST_TIMEOUT}", "-o", "addopts=",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=PER_RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return -1, time.monotonic() - started, f"pytest itself did not finish in {PER_RUN_TIMEOUT}s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    failed = [line[:160] for line in lines if line.startswith("FAILED ")]
    summary = "; ".join([*failed[:1], lines[-1]]) if lines else done.stderr.strip()[-200:]
    return done.returncode, time.monotonic() - started, summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", default="", help="only the mutations whose name contains this text")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.k.lower() in m.name.lower()]
    if not chosen:
        print(f"no mutation's name contains {args.k!r}")
        return 2
    survived = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="owlclaw-mutants-") as tmp:
        repo = copy_checkout(Path(tmp))
        for selection in sorted({m.tests for m in chosen}):
            code, seconds, summary = run_tests(repo, selection)
            if code != 0:
                print(f"BASELINE FAILS  {' '.join(selection)}: {summary}")
                return 2
        print(f"baseline: {len({m.tests for m in chosen})} selections pass unmutated")
        for mutation in chosen:
            source = repo / mutation.path
            original = source.read_text(encoding="utf-8")
            found = original.count(mutation.old)
            if found != 1:
                print(f"STALE     {mutation.name}: the patch matches {found} places in {mutation.path}")
                survived += 1
                continue
            source.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
            try:
                code, seconds, summary = run_tests(repo, mutation.tests)
            finally:
                source.write_text(original, encoding="utf-8")
            # 1: tests failed (a timeout is a failure); anything else (no tests, a crash) is not a kill
            killed = code == 1
            survived += not killed
            verdict = "killed   " if killed else "SURVIVED "
            print(f"{verdict} {mutation.name} ({seconds:.0f}s; {summary})")
    print(f"{len(chosen) - survived} of {len(chosen)} mutations killed in {time.monotonic() - t0:.0f}s")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
