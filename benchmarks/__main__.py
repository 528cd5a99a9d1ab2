"""``python -m benchmarks [names...] [--quick] [--out docs/benchmarks.md]``."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks.env import Env
from benchmarks.report import Result, machine_facts, print_result, write_markdown
from benchmarks.runner import BENCHMARKS, run_one

INTRO = (
    "What the abstraction costs, how late timers fire, how much the engine takes, and how the "
    "in-memory backend scales, measured on one machine in one run. The engine benchmarks start a "
    "private PostgreSQL and the locally built Hatchet engine (as the integration tests do), one "
    "worker process (`owlclaw-scheduler worker benchmarks.app:scheduler`), and call that same "
    "engine through owlclaw and through `hatchet-sdk` directly, interleaved, so drift and noise hit "
    "both sides alike. The burst (`seed`) is served once more by a worker written with the raw SDK, "
    "and `loadtest` runs Hatchet's own Go load tester (`cmd/hatchet-loadtest`, built by "
    "`.ci/install-loadtest.sh`) on the same engine beside both. "
    "Compare numbers within a table (ratios and differences taken side by side); "
    "absolute times depend on this machine and on what else ran on it. "
    "Regenerate with `python -m benchmarks` (under 15 minutes on 2 cores; `--quick` for a smaller run)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast look")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="the Markdown report")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    chosen = [BENCHMARKS[n] for n in (args.names or list(BENCHMARKS))]
    out: Path = args.out
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="owlclaw-bench-") as tmp:
        env = Env(chart_dir=out.parent / out.stem, workdir=Path(tmp))
        try:
            for module in chosen:
                results.append(run_one(module, env, quick=args.quick))
                print_result(results[-1])
        finally:
            env.close()
    closing = [
        "Each line above is taken from the tables of this run. The engine benchmarks ran with "
        f"{'quick' if args.quick else 'default'} sizes on a shared machine; rerun them on a quiet one "
        "before quoting absolute times."
    ]
    write_markdown(
        results,
        out,
        facts=machine_facts(),
        sizes_label="quick sizes" if args.quick else "default sizes",
        command=command.strip(),
        intro=INTRO,
        closing=closing,
    )
    print(f"\nwrote {out} and charts in {out.parent / out.stem}/")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
