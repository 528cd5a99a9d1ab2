#!/bin/sh
# migrate, keys + config (kept across restarts), then the engine + API
set -eu
/hatchet/hatchet-migrate
/hatchet/hatchet-admin quickstart --skip certs --generated-config-dir /config --overwrite=false
exec /hatchet/hatchet-lite --config /config "$@"
