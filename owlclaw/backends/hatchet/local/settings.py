"""The environment ``hatchet-lite`` and its tools are configured with.

hatchet reads its settings from ``SERVER_*``, ``DATABASE_*``, ``LITE_*`` ...
variables; :func:`engine_environment` sets the ones a local engine needs
(loopback ports, no TLS, the PostgreSQL message queue, log levels) on a copy
of this process's environment with any inherited hatchet settings removed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from owlclaw.backends.hatchet.local.processes import scrubbed_environ

__all__ = ["engine_environment"]

# Inherited variables with these prefixes would silently reconfigure the
# engine (hatchet binds its config to SERVER_*, DATABASE_*, ... env vars), so
# the engine's environment is built from a scrubbed copy of os.environ.
_SCRUBBED_ENV_PREFIXES: Final = (
    "SERVER_",
    "DATABASE_",
    "LITE_",
    "HATCHET_",
    "SCHEDULER_",
    "READ_REPLICA_",
    "ADMIN_",
    "DEFAULT_TENANT_",
    "TESTING_MATRIX_",
)
_SCRUBBED_ENV_NAMES: Final = frozenset({"CACHE_DURATION", "K8S_POD_NAMESPACE"})


def engine_environment(
    database_url: str,
    ports: Mapping[str, int],
    static_dir: Path,
    log_level: str,
    extra_env: Mapping[str, str],
) -> dict[str, str]:
    """Every variable for the engine's processes; ``extra_env`` is applied last,
    so it can override anything set here."""
    env = scrubbed_environ(os.environ, _SCRUBBED_ENV_PREFIXES, _SCRUBBED_ENV_NAMES)
    p = ports
    env.update(
        {
            "TZ": "UTC",
            "DATABASE_URL": database_url,
            "DATABASE_LOGGER_LEVEL": log_level,
            "DATABASE_LOGGER_FORMAT": "console",
            "SERVER_PORT": str(p["api"]),
            "SERVER_URL": f"http://127.0.0.1:{p['api']}",
            "SERVER_GRPC_PORT": str(p["grpc"]),
            "SERVER_GRPC_BIND_ADDRESS": "127.0.0.1",
            "SERVER_GRPC_BROADCAST_ADDRESS": f"127.0.0.1:{p['grpc']}",
            "SERVER_GRPC_INSECURE": "t",
            "SERVER_HEALTHCHECK": "t",
            "SERVER_HEALTHCHECK_PORT": str(p["health"]),
            "SERVER_AUTH_COOKIE_DOMAIN": "localhost",
            "SERVER_AUTH_COOKIE_INSECURE": "t",
            "SERVER_AUTH_SET_EMAIL_VERIFIED": "t",
            "SERVER_MSGQUEUE_KIND": "postgres",
            "SERVER_SECURITY_CHECK_ENABLED": "f",
            "SERVER_LOGGER_LEVEL": log_level,
            "SERVER_LOGGER_FORMAT": "console",
            "SERVER_ADDITIONAL_LOGGERS_QUEUE_LEVEL": log_level,
            "SERVER_ADDITIONAL_LOGGERS_QUEUE_FORMAT": "console",
            "SERVER_ADDITIONAL_LOGGERS_PGXSTATS_LEVEL": log_level,
            "SERVER_ADDITIONAL_LOGGERS_PGXSTATS_FORMAT": "console",
            "LITE_STATIC_ASSET_DIR": str(static_dir),
            "LITE_FRONTEND_BASE_PATH": "/",
            "LITE_FRONTEND_PORT": str(p["frontend"]),
            "LITE_RUNTIME_PORT": str(p["proxy"]),
        }
    )
    env.update(extra_env)
    return env
