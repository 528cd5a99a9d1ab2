#!/usr/bin/env bash
# start | stop a loopback-only Docker daemon for the container tests.
#
# start: installs Debian's docker.io (and debootstrap, for the images) if
#   missing, then runs dockerd with no bridge, no iptables, no forwarding: the
#   only network a container gets is the host's (--network host), and the
#   tests use free ports on 127.0.0.1. A daemon that already answers is used
#   as it is and left running. Exits non-zero with the reason (and the
#   daemon's log) when it cannot start.
# stop: stops the daemon that `start` started (by its pid file), nothing else.
set -euo pipefail

state="${OWLCLAW_DOCKER_STATE:-/tmp/owlclaw-dockerd}"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"

answers() { timeout 10 docker info >/dev/null 2>&1; }

start() {
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        echo "docker-daemon: apt-get install docker.io debootstrap"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        # policy-rc.d keeps the package from starting its own service
        apt-get install -y -q --no-install-recommends docker.io debootstrap >/dev/null
    fi
    if answers; then
        echo "docker-daemon: a daemon already answers; using it"
        return 0
    fi
    mkdir -p "$state"
    # loopback only: no docker0 bridge, no NAT/forwarding rules, no proxy
    # processes; --network host is the only useful network
    setsid dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
        --ip-masq=false --userland-proxy=false --pidfile "$state/dockerd.pidfile" \
        -H unix:///var/run/docker.sock >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 60))
    until answers; do
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null || ((SECONDS > deadline)); then
            echo "docker-daemon: dockerd did not start (pid $(cat "$pidfile")); its log:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        sleep 1
    done
    docker info --format "docker-daemon: dockerd {{.ServerVersion}} (pid $(cat "$pidfile")), storage {{.Driver}}, cgroup v{{.CgroupVersion}}"
}

stop() {
    [[ -f "$pidfile" ]] || return 0
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        # what a killed test run left behind (the fixtures remove their own):
        # testcontainers' containers, and the compose tests' projects with their volumes
        docker ps -aq --filter label=org.testcontainers.lang | xargs -r docker rm -f -v >/dev/null 2>&1 || true
        docker ps -a --format '{{.ID}} {{.Label "com.docker.compose.project"}}' |
            awk '$2 ~ /^owlclaw-test-/ {print $1}' | xargs -r docker rm -f -v >/dev/null 2>&1 || true
        docker volume ls --format '{{.Name}} {{.Label "com.docker.compose.project"}}' |
            awk '$2 ~ /^owlclaw-test-/ {print $1}' | xargs -r docker volume rm >/dev/null 2>&1 || true
        kill -TERM "$pid"
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "docker-daemon: stopped dockerd (pid $pid)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
