"""A throw-away PostgreSQL cluster for the local Hatchet engine, tests and benchmarks.

:class:`LocalPostgres` creates a temporary cluster (UTC, loopback only, a free
port) with the server binaries of the Debian ``postgresql`` package
(``bash .ci/install-postgres.sh``). Stdlib only, like ``engine.py``; the
process helpers both use are in ``processes.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from owlclaw.backends.hatchet.local.processes import at_exit, find_free_port, log_tail

__all__ = [
    "LocalPostgres",
    "PostgresError",
    "PostgresNotInstalledError",
    "find_postgres_bin_dir",
]

_DBNAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresNotInstalledError(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) were found."""


class PostgresError(RuntimeError):
    """A PostgreSQL command (initdb, pg_ctl, createdb) failed."""


def find_postgres_bin_dir() -> Path:
    """Locate a directory with ``initdb`` and ``pg_ctl``.

    Order: ``$OWLCLAW_PG_BIN``, the newest ``/usr/lib/postgresql/*/bin``
    (Debian), then ``initdb`` on ``PATH``.
    """
    candidates: list[Path] = []
    env_dir = os.environ.get("OWLCLAW_PG_BIN")
    if env_dir:
        candidates.append(Path(env_dir))

    def _major(path: Path) -> tuple[int, str]:
        name = path.parent.name
        return (int(name), name) if name.isdigit() else (-1, name)

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True)
    candidates.extend(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise PostgresNotInstalledError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in $OWLCLAW_PG_BIN, "
        "/usr/lib/postgresql/*/bin or PATH; run `bash .ci/install-postgres.sh` "
        "(apt-get install postgresql)."
    )


class LocalPostgres:
    """A throw-away PostgreSQL cluster in a temporary directory.

    The cluster listens on ``127.0.0.1`` only (and a Unix socket in its own
    directory), on a free port, with ``timezone = 'UTC'`` (hatchet refuses
    other time zones) and trust authentication for the ``postgres`` role.
    Durability is off by default (fsync, synchronous_commit,
    full_page_writes): it is a test database.

    initdb refuses to run as root, so when this process is root the cluster
    runs as ``run_as`` (default: the ``postgres`` system user that the Debian
    package creates).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | str | None = None,
        port: int | None = None,
        run_as: str | None = None,
        durable: bool = False,
        max_connections: int = 300,
        start_timeout: float = 60.0,
    ) -> None:
        self._bin_dir_arg = Path(bin_dir) if bin_dir is not None else None
        self._requested_port = port
        self._run_as = run_as
        self._durable = durable
        self._max_connections = max_connections
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._base_dir: Path | None = None
        self._port: int | None = None
        self._user: pwd.struct_passwd | None = None
        self._bin_dir: Path | None = None
        self._databases: set[str] = set()
        self.startup_seconds: float | None = None
        """Wall time of the last :meth:`start` (initdb + pg_ctl start)."""

    # -- properties --------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalPostgres is not started")
        return self._port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        if self._base_dir is None:
            raise RuntimeError("LocalPostgres is not started")
        return self._base_dir / "data"

    @property
    def log_path(self) -> Path:
        if self._base_dir is None:
            raise RuntimeError("LocalPostgres is not started")
        return self._base_dir / "postgres.log"

    @property
    def running(self) -> bool:
        return self._port is not None

    # -- lifecycle ---------------------------------------------------------

    def _resolve_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            if self._run_as is not None and self._run_as != pwd.getpwuid(os.geteuid()).pw_name:
                raise PostgresError("run_as needs root (it switches user)")
            return None
        name = self._run_as or "postgres"
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise PostgresError(
                f"running as root, and initdb refuses root; user {name!r} to run the "
                "cluster as does not exist (create it with `useradd --system "
                f"{name}`, or pass run_as=<an unprivileged user>)"
            ) from None

    def _run(
        self,
        args: list[str],
        *,
        as_owner: bool,
        timeout: float,
        env_extra: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.update({"TZ": "UTC", "LC_ALL": "C", "LANG": "C", "PGTZ": "UTC"})
        if env_extra:
            env.update(env_extra)
        kwargs: dict[str, Any] = {}
        if as_owner and self._user is not None:
            kwargs["user"] = self._user.pw_uid
            kwargs["group"] = self._user.pw_gid
            kwargs["extra_groups"] = []
            env["HOME"] = str(self._base_dir)
            env["USER"] = env["LOGNAME"] = self._user.pw_name
        return subprocess.run(
            args,
            cwd=str(self._base_dir),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
            **kwargs,
        )

    def start(self) -> LocalPostgres:
        """initdb and start the cluster; return ``self``."""
        with self._lock:
            if self._port is not None:
                return self
            t0 = time.monotonic()
            self._bin_dir = self._bin_dir_arg or find_postgres_bin_dir()
            self._user = self._resolve_user()
            self._base_dir = Path(tempfile.mkdtemp(prefix="owlclaw-pg-"))
            try:
                if self._user is not None:
                    os.chown(self._base_dir, self._user.pw_uid, self._user.pw_gid)
                self._initdb()
                self._start_server()
            except BaseException:
                self._remove_dir()
                raise
            self.startup_seconds = time.monotonic() - t0
            at_exit.add(self, late=True)  # engines hold connections to it: stopped last
            return self

    def _initdb(self) -> None:
        assert self._bin_dir is not None and self._base_dir is not None
        result = self._run(
            [
                str(self._bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            as_owner=True,
            timeout=self._start_timeout,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self._base_dir}'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "max_connections": str(self._max_connections),
        }
        if not self._durable:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# owlclaw LocalPostgres\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def _start_server(self) -> None:
        assert self._bin_dir is not None
        attempts = 1 if self._requested_port is not None else 3
        last_error = ""
        for _ in range(attempts):
            port = self._requested_port or find_free_port()
            result = self._run(
                [
                    str(self._bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    str(int(self._start_timeout)),
                    "start",
                ],
                as_owner=True,
                timeout=self._start_timeout + 10,
            )
            if result.returncode == 0:
                self._port = port
                return
            last_error = (
                f"pg_ctl start on port {port} failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n--- {self.log_path} ---\n"
                f"{log_tail(self.log_path)}"
            )
        raise PostgresError(last_error)

    def database_url(self, dbname: str = "hatchet") -> str:
        """Create database ``dbname`` if needed and return its URL."""
        if not _DBNAME_RE.match(dbname):
            raise ValueError(f"invalid database name {dbname!r}")
        with self._lock:
            port = self.port
            if dbname not in self._databases and dbname not in ("postgres", "template1"):
                assert self._bin_dir is not None
                result = self._run(
                    [
                        str(self._bin_dir / "createdb"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        dbname,
                    ],
                    as_owner=False,
                    timeout=30,
                )
                if result.returncode != 0 and "already exists" not in result.stderr:
                    raise PostgresError(f"createdb {dbname} failed: {result.stdout}{result.stderr}")
                self._databases.add(dbname)
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}?sslmode=disable"

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server (fast mode), wait ``downtime`` seconds, start it again
        on the same port with the same data: a database outage for fault tests."""
        with self._lock:
            if self._port is None or self._bin_dir is None:
                raise RuntimeError("LocalPostgres is not started")
            pg_ctl = str(self._bin_dir / "pg_ctl")
            stop = [pg_ctl, "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"]
            result = self._run(stop, as_owner=True, timeout=40)
            if result.returncode != 0:
                raise PostgresError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")
            time.sleep(downtime)
            start = [pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_path)]
            start += ["-o", f"-p {self._port}", "-w", "-t", str(int(self._start_timeout)), "start"]
            result = self._run(start, as_owner=True, timeout=self._start_timeout + 10)
            if result.returncode != 0:
                raise PostgresError(
                    f"pg_ctl start on port {self._port} failed: {result.stdout}{result.stderr}\n"
                    f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
                )

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete the cluster. Idempotent."""
        with self._lock:
            if self._port is not None and self._bin_dir is not None:
                with contextlib.suppress(Exception):
                    self._run(
                        [
                            str(self._bin_dir / "pg_ctl"),
                            "-D",
                            str(self.data_dir),
                            "-m",
                            "immediate",
                            "-w",
                            "-t",
                            "30",
                            "stop",
                        ],
                        as_owner=True,
                        timeout=40,
                    )
            self._port = None
            self._databases.clear()
            self._remove_dir()
            at_exit.discard(self)

    def _remove_dir(self) -> None:
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._port is not None else "stopped"
        return f"LocalPostgres({state})"
