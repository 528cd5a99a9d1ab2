#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, then run them all:
# Python packages, PostgreSQL (Debian), the Hatchet engine (built from the Go
# module proxy, cached in ~/.cache/owlclaw-engine), lint, types, unit and
# integration tests. The Hatchet tests run against the real engine; with CI set
# they fail, not skip, when it cannot start. With a Docker daemon (.ci/run
# starts one) the images are built and the container tests run too.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "python packages"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"

step "postgresql"
bash .ci/install-postgres.sh

step "hatchet engine"
bash .ci/install-engine.sh

step "hatchet load tester"
# the yardstick of `python -m benchmarks loadtest` and its smoke test
bash .ci/install-loadtest.sh

step "container images"
# Compose v2 and the images the deploy files name, built here (no registry is
# reachable): used by tests/integration/test_containers_*.py and
# test_compose_*.py. Without a Docker daemon those tests skip, or fail under CI.
if timeout 10 docker info >/dev/null 2>&1; then
    OWLCLAW_COMPOSE="$(bash .ci/install-compose.sh | tail -n 1)"
    export OWLCLAW_COMPOSE
    bash .ci/build-images.sh
elif [[ -n "${CI:-}" ]]; then
    echo "test-all: no Docker daemon answers (start one: bash .ci/docker-daemon.sh start)" >&2
    exit 1
else
    echo "no Docker daemon answers: the container and compose tests will skip"
fi

step "ruff"
python3 -m ruff check owlclaw owlclaw_scheduler_pytest tests examples benchmarks
python3 -m ruff format --check owlclaw owlclaw_scheduler_pytest tests examples benchmarks

step "mypy --strict"
python3 -m mypy

step "pytest (unit + integration)"
# two processes, whole files each (most integration time is spent waiting on
# the engine); each process starts its own engine. The files go out in
# collection order, where tests/conftest.py puts the slowest first (xdist's
# default reorder, by tests per file, sent the one-test soak out last)
python3 -m pytest -ra -n 2 --dist loadfile --no-loadscope-reorder --durations=15 "$@"
