#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them all:
# Python packages, PostgreSQL (Debian), the Hatchet engine (built from the Go
# module proxy, cached in ~/.cache/owlclaw-engine), lint, types, unit and
# integration tests. The Hatchet tests run against the real engine; with CI set
# they fail, not skip, when it cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "python packages"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"

step "postgresql"
bash .ci/install-postgres.sh

step "hatchet engine"
bash .ci/install-engine.sh

step "ruff"
python3 -m ruff check owlclaw owlclaw_scheduler_pytest tests examples benchmarks
python3 -m ruff format --check owlclaw owlclaw_scheduler_pytest tests examples benchmarks

step "mypy --strict"
python3 -m mypy

step "pytest (unit + integration)"
# two processes, whole files each (most integration time is spent waiting on
# the engine); each process starts its own engine
python3 -m pytest -ra -n 2 --dist loadfile --durations=15 "$@"
