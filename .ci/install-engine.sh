#!/usr/bin/env bash
# Build the Hatchet engine (hatchet-lite, hatchet-migrate, hatchet-admin, and
# for compose.production.yml's images hatchet-engine and hatchet-api) from Go
# source at the pinned version into the engine cache. Only the binaries the
# cache lacks are built. Arguments name other commands of the same module to
# build instead (.ci/install-loadtest.sh: hatchet-loadtest).
#
# The version has one source of truth: ENGINE_VERSION in
# owlclaw/backends/hatchet/local/engine.py (read below with grep).
#
# Why not `go install github.com/hatchet-dev/hatchet/cmd/...@vX`: the module
# proxy refuses to list hatchet's versions (go install asks for them to check
# deprecation -> 403), and `go get` into a scratch module fails on the checksum
# database. What works: `go mod download` the exact version (which verifies it
# and extracts it, with hatchet's own go.mod/go.sum, into the module cache) and
# build from inside that directory.
#
# Environment:
#   OWLCLAW_ENGINE_CACHE  cache root (default: $HOME/.cache/owlclaw-engine);
#                         binaries go to $OWLCLAW_ENGINE_CACHE/<version>/bin
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
engine_py="$repo_root/owlclaw/backends/hatchet/local/engine.py"

version="$(grep -E '^ENGINE_VERSION = "v[0-9][^"]*"' "$engine_py" | head -n1 | cut -d'"' -f2)"
if [[ -z "$version" ]]; then
    echo "install-engine: could not read ENGINE_VERSION from $engine_py" >&2
    exit 1
fi

cache_root="${OWLCLAW_ENGINE_CACHE:-$HOME/.cache/owlclaw-engine}"
bin_dir="$cache_root/$version/bin"
all_binaries=(hatchet-lite hatchet-migrate hatchet-admin hatchet-engine hatchet-api)
if [[ $# -gt 0 ]]; then
    all_binaries=("$@")
fi

binaries=()
for b in "${all_binaries[@]}"; do
    [[ -x "$bin_dir/$b" ]] || binaries+=("$b")
done
if [[ ${#binaries[@]} == 0 ]]; then
    echo "engine cache hit: ${all_binaries[*]} in $bin_dir (hatchet $version)"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-engine: 'go' is not on PATH; a Go toolchain (>= the one hatchet's go.mod asks for) is required" >&2
    exit 1
fi

module="github.com/hatchet-dev/hatchet"
echo "install-engine: building ${binaries[*]} of hatchet $version ($(go version)) into $bin_dir"
start_s=$(date +%s)

# Download (and verify) the exact module version; -json prints its "Dir".
dl_json="$(mktemp)"
trap 'rm -f "$dl_json"' EXIT
if ! go mod download -json "$module@$version" >"$dl_json"; then
    echo "install-engine: 'go mod download $module@$version' failed:" >&2
    cat "$dl_json" >&2
    exit 1
fi
src_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$dl_json" | head -n1)"
if [[ -z "$src_dir" || ! -f "$src_dir/go.mod" ]]; then
    src_dir="$(go env GOMODCACHE)/$module@$version"
fi
if [[ ! -f "$src_dir/go.mod" ]]; then
    echo "install-engine: module source not found after download (looked in $src_dir)" >&2
    cat "$dl_json" >&2
    exit 1
fi
for b in "${binaries[@]}"; do
    if [[ ! -d "$src_dir/cmd/$b" ]]; then
        echo "install-engine: $module@$version has no cmd/$b (looked in $src_dir)" >&2
        exit 1
    fi
done

mkdir -p "$bin_dir"
tmp_out="$(mktemp -d "$cache_root/$version/build.XXXXXX")"
trap 'rm -f "$dl_json"; rm -rf "$tmp_out"' EXIT

# -X main.Version matters: the engine reports it to the SDK, which otherwise
# falls back to its legacy (pre-v1) code paths (a command without that
# variable, such as the load tester, is not affected). GOFLAGS=-mod=mod is not
# needed: hatchet's go.sum is complete. The module cache is read-only, so go
# must not try to write into src_dir (it does not with -o elsewhere).
if ! (cd "$src_dir" && go build -trimpath \
        -ldflags "-X main.Version=$version" \
        -o "$tmp_out/" \
        "${binaries[@]/#/./cmd/}"); then
    echo "install-engine: go build of hatchet $version failed (see the go error above)" >&2
    exit 1
fi

for b in "${binaries[@]}"; do
    if [[ ! -x "$tmp_out/$b" ]]; then
        echo "install-engine: go build did not produce $b" >&2
        exit 1
    fi
done
# Move into place only once all exist, so a cache hit is never partial.
for b in "${binaries[@]}"; do
    mv -f "$tmp_out/$b" "$bin_dir/$b"
done

end_s=$(date +%s)
echo "install-engine: built ${binaries[*]} of hatchet $version in $((end_s - start_s))s -> $bin_dir"
if [[ -x "$bin_dir/hatchet-lite" ]]; then
    "$bin_dir/hatchet-lite" --version
fi
