"""A local Hatchet engine on a throw-away PostgreSQL, for tests, benchmarks and the demo.

Stdlib only: it starts an engine before ``hatchet_sdk`` is imported or configured.
``python -m owlclaw.backends.hatchet.local`` runs one until Ctrl-C.
"""

from owlclaw.backends.hatchet.local.engine import (
    ENGINE_VERSION,
    EngineConnection,
    EngineNotInstalledError,
    EngineStartError,
    LocalEngine,
    find_engine_binaries,
)
from owlclaw.backends.hatchet.local.postgres import (
    LocalPostgres,
    PostgresError,
    PostgresNotInstalledError,
    find_postgres_bin_dir,
)

__all__ = [
    "ENGINE_VERSION",
    "EngineConnection",
    "EngineNotInstalledError",
    "EngineStartError",
    "LocalEngine",
    "LocalPostgres",
    "PostgresError",
    "PostgresNotInstalledError",
    "find_engine_binaries",
    "find_postgres_bin_dir",
]
