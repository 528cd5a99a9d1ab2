#!/usr/bin/env bash
# Build Hatchet's own Go load tester (cmd/hatchet-loadtest) at the pinned engine
# version into the engine cache, beside the engine binaries (cached: nothing is
# built when the binary exists). Used by `python -m benchmarks loadtest` as the
# yardstick. The method and the environment are .ci/install-engine.sh's.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-engine.sh" hatchet-loadtest
