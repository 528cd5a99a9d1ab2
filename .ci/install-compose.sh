#!/usr/bin/env bash
# Docker Compose v2, built from the Go module proxy (no release download is
# reachable here; Debian's docker-compose 1.29 rejects the compose files'
# top-level `name:` and `required: false`). Cached in
# ~/.cache/owlclaw-compose/<version>/docker-compose and linked as the docker
# CLI plugin, so `docker compose` works. Prints the binary's path last.
set -euo pipefail
version=v2.28.1
module=github.com/docker/compose/v2
dir="${OWLCLAW_COMPOSE_CACHE:-$HOME/.cache/owlclaw-compose}/$version"
bin="$dir/docker-compose"

if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || { echo "install-compose: 'go' is not on PATH" >&2; exit 1; }
    echo "install-compose: building $module@$version ($(go version))" >&2
    src="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
    [[ -f "$src/go.mod" ]] || { echo "install-compose: go mod download $module@$version failed" >&2; exit 1; }
    mkdir -p "$dir"
    (cd "$src" && go build -trimpath -ldflags "-s -w -X $module/internal.Version=$version" -o "$bin.tmp" ./cmd)
    mv -f "$bin.tmp" "$bin"
fi
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
echo "$bin"
