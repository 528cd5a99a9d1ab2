"""``python -m owlclaw.backends.hatchet.local``: PostgreSQL + hatchet-lite until Ctrl-C."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from owlclaw.backends.hatchet.local.engine import (
    ENGINE_VERSION,
    EngineNotInstalledError,
    EngineStartError,
    LocalEngine,
)
from owlclaw.backends.hatchet.local.postgres import LocalPostgres, PostgresError, PostgresNotInstalledError


def main(argv: list[str] | None = None) -> int:
    """Start PostgreSQL + hatchet-lite, print the client env (with the schedules'
    state database, ``owlclaw``, on a temporary PostgreSQL), run until killed."""
    parser = argparse.ArgumentParser(
        prog="python -m owlclaw.backends.hatchet.local",
        description="Run a local Hatchet engine (and PostgreSQL) until Ctrl-C/SIGTERM.",
    )
    parser.add_argument("--database-url", help="use this PostgreSQL instead of a temporary one")
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--api-port", type=int)
    parser.add_argument("--workdir", type=Path, help="keep config and engine.log here")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--log-level", default="warn")
    args = parser.parse_args(argv)

    stop_requested = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    pg: LocalPostgres | None = None
    engine: LocalEngine | None = None
    try:
        if args.database_url:
            database_url = args.database_url
        else:
            pg = LocalPostgres().start()
            database_url = pg.database_url("hatchet")
            print(
                f"# postgres on 127.0.0.1:{pg.port} (started in {pg.startup_seconds:.1f}s)",
                file=sys.stderr,
            )
        engine = LocalEngine(
            database_url,
            grpc_port=args.grpc_port,
            api_port=args.api_port,
            workdir=args.workdir,
            startup_timeout=args.startup_timeout,
            log_level=args.log_level,
        )
        conn = engine.start()
        print(
            f"# hatchet-lite {ENGINE_VERSION} ready in {engine.timings['total']:.1f}s; "
            f"ports {engine.ports}; log {engine.log_path}",
            file=sys.stderr,
        )
        exports = {
            "HATCHET_CLIENT_TOKEN": conn.token,
            "HATCHET_CLIENT_HOST_PORT": conn.host_port,
            "HATCHET_CLIENT_SERVER_URL": conn.server_url,
            "HATCHET_CLIENT_TLS_STRATEGY": "none",
        }
        if pg is not None:  # schedules' state: an owlclaw database beside the engine's
            exports["OWLCLAW_STATE_DATABASE_URL"] = pg.database_url("owlclaw")
        print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()))
        removes = "and removes the temporary database" if pg is not None else "(your database stays)"
        print(f"# Ctrl-C or SIGTERM stops the engine {removes}.", file=sys.stderr)
        sys.stdout.flush()
        while not stop_requested.wait(1.0):
            if not engine.running:
                print(
                    f"hatchet-lite exited unexpectedly; see {engine.log_path}",
                    file=sys.stderr,
                )
                return 1
        return 0
    except (
        EngineNotInstalledError,
        EngineStartError,
        PostgresError,
        PostgresNotInstalledError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.stop()
        if pg is not None:
            pg.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
