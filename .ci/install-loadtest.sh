#!/usr/bin/env bash
# Build Hatchet's own Go load tester (cmd/hatchet-loadtest) at the pinned engine
# version into the engine cache, beside the engine binaries. Used by
# `python -m benchmarks loadtest` as the yardstick.
#
# Same method as .ci/install-engine.sh (read its header for why not `go
# install`): `go mod download` the exact module version (a no-op when the
# engine was built already: the module cache holds it), then `go build` from
# inside the module directory. Cached: nothing is built when the binary exists.
#
# Environment:
#   OWLCLAW_ENGINE_CACHE  cache root (default: $HOME/.cache/owlclaw-engine);
#                         the binary goes to $OWLCLAW_ENGINE_CACHE/<version>/bin
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
engine_py="$repo_root/owlclaw/backends/hatchet/local/engine.py"

version="$(grep -E '^ENGINE_VERSION = "v[0-9][^"]*"' "$engine_py" | head -n1 | cut -d'"' -f2)"
if [[ -z "$version" ]]; then
    echo "install-loadtest: could not read ENGINE_VERSION from $engine_py" >&2
    exit 1
fi

cache_root="${OWLCLAW_ENGINE_CACHE:-$HOME/.cache/owlclaw-engine}"
bin_dir="$cache_root/$version/bin"
binary=hatchet-loadtest

if [[ -x "$bin_dir/$binary" ]]; then
    echo "load tester cache hit: $bin_dir/$binary (hatchet $version)"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-loadtest: 'go' is not on PATH; a Go toolchain (>= the one hatchet's go.mod asks for) is required" >&2
    exit 1
fi

module="github.com/hatchet-dev/hatchet"
echo "install-loadtest: building $binary of hatchet $version ($(go version)) into $bin_dir"
start_s=$(date +%s)

dl_json="$(mktemp)"
trap 'rm -f "$dl_json"' EXIT
if ! go mod download -json "$module@$version" >"$dl_json"; then
    echo "install-loadtest: 'go mod download $module@$version' failed:" >&2
    cat "$dl_json" >&2
    exit 1
fi
src_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$dl_json" | head -n1)"
if [[ -z "$src_dir" || ! -f "$src_dir/go.mod" ]]; then
    src_dir="$(go env GOMODCACHE)/$module@$version"
fi
if [[ ! -d "$src_dir/cmd/$binary" ]]; then
    echo "install-loadtest: $module@$version has no cmd/$binary (looked in $src_dir)" >&2
    exit 1
fi

mkdir -p "$bin_dir"
tmp_out="$(mktemp -d "$cache_root/$version/build.XXXXXX")"
trap 'rm -f "$dl_json"; rm -rf "$tmp_out"' EXIT

# The module cache is read-only; -o outside it keeps go from writing there.
if ! (cd "$src_dir" && go build -trimpath -o "$tmp_out/$binary" "./cmd/$binary"); then
    echo "install-loadtest: go build of cmd/$binary at hatchet $version failed (see the go error above)" >&2
    exit 1
fi
# Move into place only once built, so a cache hit is never a partial file.
mv -f "$tmp_out/$binary" "$bin_dir/$binary"

end_s=$(date +%s)
echo "install-loadtest: built $binary of hatchet $version in $((end_s - start_s))s -> $bin_dir/$binary"
