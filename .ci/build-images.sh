#!/usr/bin/env bash
# Build, without a container registry, the images the deploy files name:
#   owlclaw/debian-base:bookworm   debootstrap (Debian's packages) + docker import
#   postgres:15-bookworm           Debian's postgresql-15 + deploy/images/postgres
#   ghcr.io/hatchet-dev/hatchet/hatchet-lite:<ENGINE_VERSION>
#                                  the binaries of .ci/install-engine.sh + deploy/images/hatchet
#   ghcr.io/hatchet-dev/hatchet/hatchet-{migrate,admin,engine,api}:<ENGINE_VERSION>
#                                  one binary each + deploy/images/hatchet-server
#                                  (compose.production.yml; its dashboard image,
#                                  a node build, is not made: docs/deployment.md)
# The daemon keeps them between runs: the base is built once (its debs are
# cached in ~/.cache/owlclaw-images), the others are rebuilt from the layer cache.
# Needs a running daemon (.ci/docker-daemon.sh start) and the engine binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

export DOCKER_BUILDKIT=0 # the legacy builder: buildx is not installed
cache="${OWLCLAW_IMAGE_CACHE:-$HOME/.cache/owlclaw-images}"
base=owlclaw/debian-base:bookworm
mirror="${OWLCLAW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
version="$(sed -n 's/^ENGINE_VERSION = "\(v[0-9.]*\)"$/\1/p' owlclaw/backends/hatchet/local/engine.py)"
engine_bin="${OWLCLAW_ENGINE_CACHE:-$HOME/.cache/owlclaw-engine}/$version/bin"

if ! docker image inspect "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || {
        echo "build-images: debootstrap missing: apt-get install debootstrap" >&2
        exit 1
    }
    mkdir -p "$cache/debs"
    root="$(mktemp -d /tmp/owlclaw-rootfs.XXXXXX)"
    trap 'rm -rf "$root"' EXIT
    echo "build-images: debootstrap bookworm into $root"
    # curl and wget: the compose files' healthchecks use them
    debootstrap --variant=minbase --cache-dir="$cache/debs" \
        --include=postgresql-15,curl,wget,ca-certificates bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
        tail -n 30 "$cache/debootstrap.log" >&2
        echo "build-images: debootstrap failed (full log: $cache/debootstrap.log)" >&2
        exit 1
    }
    # the package's own cluster and apt's lists are not wanted in an image
    rm -rf "$root"/var/lib/postgresql/15 "$root"/etc/postgresql/15 "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* \
        "$root"/usr/share/man/*
    tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$root"
    trap - EXIT
    echo "build-images: $base imported"
fi

echo "build-images: postgres:15-bookworm"
docker build -q -t postgres:15-bookworm deploy/images/postgres >/dev/null

if [[ ! -x "$engine_bin/hatchet-lite" ]]; then
    echo "build-images: no engine binaries in $engine_bin: run .ci/install-engine.sh first" >&2
    exit 1
fi
ctx="$(mktemp -d /tmp/owlclaw-hatchet-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
cp -a deploy/images/hatchet/. "$ctx/"
mkdir "$ctx/bin" "$ctx/links"
# hard links: no copy of ~200 MB, and never in the repository
for b in hatchet-lite hatchet-migrate hatchet-admin; do
    ln "$engine_bin/$b" "$ctx/bin/$b" 2>/dev/null || cp "$engine_bin/$b" "$ctx/bin/$b"
    ln -s "/hatchet/$b" "$ctx/links/$b" # /hatchet-admin, as in the official image
done
lite="ghcr.io/hatchet-dev/hatchet/hatchet-lite:$version"
echo "build-images: $lite"
docker build -q -t "$lite" "$ctx" >/dev/null
rm -rf "$ctx"

# compose.production.yml's images: one context per binary (the classic builder
# sends the whole context), the binary hard-linked in
for target in migrate admin engine api; do
    b="hatchet-$target"
    if [[ ! -x "$engine_bin/$b" ]]; then
        echo "build-images: no $b in $engine_bin: run .ci/install-engine.sh first" >&2
        exit 1
    fi
    ctx="$(mktemp -d /tmp/owlclaw-hatchet-image.XXXXXX)"
    cp -a deploy/images/hatchet-server/. "$ctx/"
    mkdir "$ctx/bin"
    ln "$engine_bin/$b" "$ctx/bin/$b" 2>/dev/null || cp "$engine_bin/$b" "$ctx/bin/$b"
    image="ghcr.io/hatchet-dev/hatchet/$b:$version"
    echo "build-images: $image"
    docker build -q --build-arg "TARGET=$target" -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
done
docker image prune -f >/dev/null # the previous builds' untagged layers
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "debian-base|postgres|hatchet" || true
