"""Run a real, local Hatchet engine (and a throw-away PostgreSQL) for tests.

This module is stdlib-only on purpose: it must not import ``hatchet_sdk`` so
that it can start an engine for any process (tests, benchmarks, the demo)
before the SDK is configured.

* :class:`LocalEngine` runs ``hatchet-migrate``, ``hatchet-admin quickstart``
  (keys and config), ``hatchet-admin token create`` and ``hatchet-lite`` built
  from source at :data:`ENGINE_VERSION` (``bash .ci/install-engine.sh``), on
  free loopback ports, and returns an :class:`EngineConnection`.

Its environment is built in ``settings.py``; starting and stopping processes,
ports and log tails are the helpers in ``processes.py``, shared with
``postgres.py``.

The PostgreSQL it runs on comes from :mod:`owlclaw.backends.hatchet.local.postgres`
or from the user. ``python -m owlclaw.backends.hatchet.local`` starts both and prints the
``HATCHET_CLIENT_*`` environment for a client, then runs until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from owlclaw.backends.hatchet.local.processes import (
    LOG_TAIL_LINES,
    at_exit,
    find_free_port,
    http_status,
    log_header,
    log_tail,
    run_logged,
    start_process,
    stop_process,
    tcp_open,
)
from owlclaw.backends.hatchet.local.settings import engine_environment

__all__ = [
    "ENGINE_BINARIES",
    "ENGINE_VERSION",
    "EngineConnection",
    "EngineNotInstalledError",
    "EngineStartError",
    "LocalEngine",
    "engine_bin_dir",
    "find_engine_binaries",
]

# The one place the engine version is pinned. .ci/install-engine.sh reads this
# line with grep; keep it a plain string literal on one line. It is paired with
# the PyPI package hatchet-sdk==1.38.0 (the SDK version in that engine tag).
ENGINE_VERSION = "v0.105.0"

ENGINE_BINARIES: Final = ("hatchet-lite", "hatchet-migrate", "hatchet-admin")

_INSTALL_HINT: Final = (
    "run `bash .ci/install-engine.sh` from the repository root; it does "
    "`go mod download -json github.com/hatchet-dev/hatchet@{v}` and then, inside "
    'that module directory, `go build -trimpath -ldflags "-X main.Version={v}" '
    "-o <bin dir>/ ./cmd/hatchet-lite ./cmd/hatchet-migrate ./cmd/hatchet-admin` "
    "(needs Go and the Go module proxy; takes a few minutes on 2 cores)"
)


# --------------------------------------------------------------------------
# errors


class EngineNotInstalledError(RuntimeError):
    """The hatchet binaries for :data:`ENGINE_VERSION` are not built yet."""


class EngineStartError(RuntimeError):
    """The engine failed to start; the message ends with the log's tail."""


# --------------------------------------------------------------------------
# binaries and ports


def engine_bin_dir() -> Path:
    """Where install-engine.sh puts the binaries for :data:`ENGINE_VERSION`.

    ``${OWLCLAW_ENGINE_CACHE:-~/.cache/owlclaw-engine}/<version>/bin``.
    """
    root = os.environ.get("OWLCLAW_ENGINE_CACHE") or str(Path.home() / ".cache" / "owlclaw-engine")
    return Path(root).expanduser() / ENGINE_VERSION / "bin"


def find_engine_binaries(bin_dir: Path | str | None = None) -> Path:
    """Return the directory holding all of :data:`ENGINE_BINARIES`.

    :raises EngineNotInstalledError: if any binary is missing or not
        executable, with instructions to build them.
    """
    directory = Path(bin_dir) if bin_dir is not None else engine_bin_dir()
    missing = [
        name
        for name in ENGINE_BINARIES
        if not (directory / name).is_file() or not os.access(directory / name, os.X_OK)
    ]
    if missing:
        raise EngineNotInstalledError(
            f"Hatchet engine {ENGINE_VERSION} is not installed: missing "
            f"{', '.join(missing)} in {directory}. To build it, "
            + _INSTALL_HINT.format(v=ENGINE_VERSION)
            + "."
        )
    return directory


def _jwt_claims(token: str) -> dict[str, Any]:
    """Decode (without verifying) the claims of a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"could not decode JWT payload: {exc}") from exc
    if not isinstance(claims, dict):
        raise ValueError("JWT payload is not a JSON object")
    return claims


# --------------------------------------------------------------------------
# Hatchet engine


@dataclass(frozen=True)
class EngineConnection:
    """How a Hatchet client reaches a :class:`LocalEngine`.

    ``host_port`` is the gRPC address, ``server_url`` the REST API base URL;
    TLS is off (the client needs ``tls strategy = none``).
    """

    token: str = field(repr=False)
    host_port: str
    server_url: str
    tenant_id: str

    def as_env(self) -> dict[str, str]:
        """The ``HATCHET_CLIENT_*`` variables for ``hatchet_sdk.ClientConfig()``."""
        return {
            "HATCHET_CLIENT_TOKEN": self.token,
            "HATCHET_CLIENT_HOST_PORT": self.host_port,
            "HATCHET_CLIENT_SERVER_URL": self.server_url,
            "HATCHET_CLIENT_TENANT_ID": self.tenant_id,
            "HATCHET_CLIENT_TLS_STRATEGY": "none",
        }


class LocalEngine:
    """A real ``hatchet-lite`` (API + engine + gRPC in one process).

    :param database_url: a PostgreSQL URL (e.g. from
        :meth:`LocalPostgres.database_url`); migrations are applied to it.
    :param bin_dir: directory of the built binaries (default
        :func:`find_engine_binaries`).
    :param grpc_port: gRPC port (default: a free one). Clients use
        ``127.0.0.1:<grpc_port>``.
    :param api_port: REST API port (default: a free one).
    :param workdir: where config, keys and ``engine.log`` go (default: a new
        temporary directory, removed by :meth:`stop` unless ``keep_workdir``
        or the start failed).
    :param startup_timeout: seconds for migrate + config + start + healthy.
    :param log_level: hatchet's ``SERVER_LOGGER_LEVEL`` (and the database
        and queue loggers).
    :param extra_env: extra environment for every hatchet process (applied
        last, so it can override anything set here).

    hatchet-lite also opens a health-check port, a static-file (frontend)
    port and a reverse-proxy port; all of them are chosen free here too
    (:attr:`ports`). The HTTP ports bind every interface (hatchet offers no
    bind-address setting for them); gRPC binds 127.0.0.1.
    """

    def __init__(
        self,
        database_url: str,
        bin_dir: Path | str | None = None,
        grpc_port: int | None = None,
        api_port: int | None = None,
        workdir: Path | str | None = None,
        *,
        startup_timeout: float = 120.0,
        log_level: str = "warn",
        extra_env: dict[str, str] | None = None,
        keep_workdir: bool = False,
        stop_timeout: float = 15.0,
    ) -> None:
        self._database_url = database_url
        self._bin_dir_arg = Path(bin_dir) if bin_dir is not None else None
        self._grpc_port_arg = grpc_port
        self._api_port_arg = api_port
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self._startup_timeout = startup_timeout
        self._log_level = log_level
        self._extra_env = dict(extra_env or {})
        self._keep_workdir = keep_workdir
        self._stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._workdir: Path | None = None
        self._owns_workdir = False
        self._failed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._connection: EngineConnection | None = None
        self._lite_command: list[str] = []
        self.ports: dict[str, int] = {}
        """Every port hatchet-lite listens on: grpc, api, health, frontend, proxy."""
        self.timings: dict[str, float] = {}
        """Seconds per start phase: migrate, quickstart, token, ready, total."""

    # -- properties --------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("LocalEngine is not started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """The engine log (output of every hatchet command, appended)."""
        return self.workdir / "engine.log"

    @property
    def connection(self) -> EngineConnection:
        if self._connection is None:
            raise RuntimeError("LocalEngine is not started")
        return self._connection

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def api_port(self) -> int:
        return self.ports["api"]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- helpers -----------------------------------------------------------

    def _choose_ports(self) -> None:
        used: set[int] = set()

        def pick(requested: int | None) -> int:
            port = requested if requested is not None else find_free_port(used)
            if port in used:
                raise ValueError(f"port {port} requested twice")
            used.add(port)
            return port

        self.ports = {
            "grpc": pick(self._grpc_port_arg),
            "api": pick(self._api_port_arg),
            "health": pick(None),
            "frontend": pick(None),
            "proxy": pick(None),
        }

    def _env(self) -> dict[str, str]:
        return engine_environment(
            self._database_url, self.ports, self.workdir / "static", self._log_level, self._extra_env
        )

    def _fail(self, message: str) -> EngineStartError:
        self._failed = True
        return EngineStartError(
            f"{message}\n--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{log_tail(self.log_path)}"
        )

    def _run_step(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        deadline: float,
        log: IO[bytes],
        capture_stdout: bool = False,
    ) -> str:
        log_header(log, f"{name}: {shlex.join(args)}")
        t0 = time.monotonic()
        remaining = deadline - t0
        if remaining <= 0:
            raise self._fail(f"hatchet startup timed out before {name}")
        try:
            code, out = run_logged(args, self.workdir, env, log, remaining, capture_stdout=capture_stdout)
        except subprocess.TimeoutExpired:
            raise self._fail(
                f"{name} did not finish within the startup timeout ({self._startup_timeout:.0f}s)"
            ) from None
        self.timings[name] = time.monotonic() - t0
        if code != 0:
            raise self._fail(f"{name} failed with exit code {code}")
        return out

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> EngineConnection:
        """Migrate, configure and start hatchet-lite; wait until healthy.

        :raises EngineNotInstalledError: binaries missing.
        :raises EngineStartError: any step failed or timed out (the message
            includes the log tail; :attr:`log_path` has the whole log).
        """
        with self._lock:
            if self._connection is not None and self.running:
                return self._connection
            bin_dir = find_engine_binaries(self._bin_dir_arg)
            t_start = time.monotonic()
            deadline = t_start + self._startup_timeout
            self._failed = False
            self.timings = {}
            if self._workdir_arg is not None:
                self._workdir = self._workdir_arg
                self._workdir.mkdir(parents=True, exist_ok=True)
                self._owns_workdir = False
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix="owlclaw-hatchet-"))
                self._owns_workdir = True
            # hatchet-lite always serves a frontend and panics without an
            # index.html; the real dashboard is a separate node build, so a
            # placeholder page stands in for it.
            static_dir = self.workdir / "static"
            static_dir.mkdir(exist_ok=True)
            (static_dir / "index.html").write_text(
                "<!doctype html><title>hatchet-lite</title>"
                "<p>Hatchet dashboard not built; the API is under /api.</p>\n",
                encoding="utf-8",
            )
            config_dir = self.workdir / "config"
            self._choose_ports()
            env = self._env()
            at_exit.add(self)
            try:
                with self.log_path.open("ab") as log:
                    log_header(log, f"ports {json.dumps(self.ports)}")
                    self._run_step("migrate", [str(bin_dir / "hatchet-migrate")], env, deadline, log)
                    admin = str(bin_dir / "hatchet-admin")
                    quickstart = [admin, "quickstart", "--skip", "certs", "--overwrite=false"]
                    quickstart += ["--generated-config-dir", str(config_dir)]
                    self._run_step("quickstart", quickstart, env, deadline, log)
                    mint = [admin, "token", "create", "--config", str(config_dir), "--name", "owlclaw"]
                    out = self._run_step("token", mint, env, deadline, log, capture_stdout=True)
                    tokens = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("ey")]
                    if not tokens:
                        raise self._fail("hatchet-admin token create printed no token")
                    token = tokens[-1]
                    try:
                        claims = _jwt_claims(token)
                    except ValueError as exc:
                        raise self._fail(f"token from hatchet-admin is unusable: {exc}") from None
                    tenant_id = str(claims.get("sub", ""))

                    log_header(log, "start hatchet-lite")
                    t0 = time.monotonic()
                    self._lite_command = [str(bin_dir / "hatchet-lite"), "--config", str(config_dir)]
                    self._proc = self._spawn_lite(env, log)
                self._wait_ready(deadline)
                self.timings["ready"] = time.monotonic() - t0
            except BaseException:
                self._failed = True
                self._terminate()
                raise
            self.timings["total"] = time.monotonic() - t_start
            self._connection = EngineConnection(
                token=token,
                host_port=f"127.0.0.1:{self.ports['grpc']}",
                server_url=f"http://127.0.0.1:{self.ports['api']}",
                tenant_id=tenant_id,
            )
            return self._connection

    def _spawn_lite(self, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return start_process(self._lite_command, self.workdir, env, log)

    def restart(self, downtime: float = 0.0) -> EngineConnection:
        """Stop hatchet-lite (SIGTERM, then SIGKILL), wait ``downtime`` seconds,
        and start it again on the same ports, config and database, so clients
        keep their address and token: an engine outage for fault tests.
        Returns the same :class:`EngineConnection`.

        :raises EngineStartError: it did not come back within the startup timeout.
        """
        with self._lock:
            if self._connection is None or not self._lite_command:
                raise RuntimeError("LocalEngine is not started")
            self._terminate()
            time.sleep(downtime)
            with self.log_path.open("ab") as log:
                log_header(log, "restart hatchet-lite")
                self._proc = self._spawn_lite(self._env(), log)
            try:
                self._wait_ready(time.monotonic() + self._startup_timeout)
            except BaseException:
                self._terminate()
                raise
            return self._connection

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        p = self.ports
        health_url = f"http://127.0.0.1:{p['health']}/ready"
        api_url = f"http://127.0.0.1:{p['api']}/api/ready"
        pending = {"health": True, "api": True, "grpc": True}
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._fail(f"hatchet-lite exited with code {code} during startup")
            if pending["health"] and http_status(health_url) == 200:
                pending["health"] = False
            if pending["api"] and http_status(api_url) == 200:
                pending["api"] = False
            if pending["grpc"] and tcp_open(p["grpc"]):
                pending["grpc"] = False
            if not any(pending.values()):
                return
            if time.monotonic() >= deadline:
                waiting = ", ".join(k for k, v in pending.items() if v)
                raise self._fail(
                    f"hatchet-lite not ready within {self._startup_timeout:.0f}s "
                    f"(still waiting for: {waiting})"
                )
            time.sleep(0.1)

    def _terminate(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, self._stop_timeout)
        self._proc = None

    def stop(self) -> None:
        """Terminate hatchet-lite (SIGTERM, then SIGKILL) and wait. Idempotent.

        An auto-created workdir is removed unless ``keep_workdir`` was set or
        the start failed (so the log stays readable).
        """
        with self._lock:
            self._terminate()
            self._connection = None
            if (
                self._owns_workdir
                and self._workdir is not None
                and not self._keep_workdir
                and not self._failed
            ):
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            at_exit.discard(self)

    def __enter__(self) -> LocalEngine:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"ports={self.ports}" if self.running else "stopped"
        return f"LocalEngine({state})"
