"""A Hatchet engine for the integration tests, and workers in subprocesses.

``hatchet_engine`` (one per session) finds an engine in this order:

1. ``HATCHET_CLIENT_TOKEN`` (with ``HATCHET_CLIENT_HOST_PORT`` and
   ``HATCHET_CLIENT_SERVER_URL``) names one you run yourself;
2. the locally built hatchet-lite (``bash .ci/install-engine.sh``) on a
   throw-away PostgreSQL (``bash .ci/install-postgres.sh``);
3. the ``hatchet-lite`` and ``postgres:15-bookworm`` images through
   testcontainers, if a Docker daemon answers (``.ci/docker-daemon.sh start``,
   images from ``.ci/build-images.sh``).

``OWLCLAW_TEST_ENGINE=local`` or ``=containers`` uses only that one (and
ignores ``HATCHET_CLIENT_TOKEN``). If none can start, the tests are skipped with the reasons, except under CI
(``CI`` set), where they fail: CI cannot go green without a real engine.

Each session uses a fresh namespace, so runs from other sessions on a shared
engine are invisible. Workers run the conformance app
(``owlclaw.scheduler.testing.app``) in subprocesses configured through
``OWLCLAW_CONFIG`` + ``HATCHET_CLIENT_*``, the way a deployment would.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from processes import WorkerProcess, start_worker

from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.polling import PollTimeoutError, poll_until_blocking

pytestmark = pytest.mark.integration

_CLIENT_ENV = (
    "HATCHET_CLIENT_TOKEN",
    "HATCHET_CLIENT_HOST_PORT",
    "HATCHET_CLIENT_SERVER_URL",
    "HATCHET_CLIENT_TLS_STRATEGY",
    "HATCHET_CLIENT_NAMESPACE",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class HatchetEngine:
    """How to reach the session's engine; ``namespace`` is fresh per session."""

    source: str
    token: str = field(repr=False)
    host_port: str
    server_url: str
    tls_strategy: str
    namespace: str
    mode: str = "lite"
    # the application's database for schedule state (scheduler.hatchet.state_database_url)
    state_database_url: str | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The ``scheduler.hatchet`` section for this engine."""
        section: dict[str, Any] = {
            "mode": self.mode,
            "host_port": self.host_port,
            "server_url": self.server_url,
            "tls_strategy": self.tls_strategy,
            "namespace": self.namespace,
        }
        section.update(overrides)
        return section

    def config(self, **overrides: Any) -> HatchetConfig:
        return HatchetConfig.model_validate({"api_token": self.token, **self.settings(**overrides)})

    def worker_env(self, config_path: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
        env.update(
            OWLCLAW_CONFIG=str(config_path),
            OWLCLAW_SCHEDULER_BACKEND="hatchet",
            HATCHET_CLIENT_TOKEN=self.token,
            PYTHONUNBUFFERED="1",
        )
        return env


def _unavailable(reasons: list[str]) -> None:
    message = "no Hatchet engine for the integration tests:\n  " + "\n  ".join(reasons)
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def local_engine_binaries() -> None:
    """The locally built engine and PostgreSQL are installed (else fail in CI, skip elsewhere)."""
    from owlclaw.backends.hatchet.local.engine import EngineNotInstalledError, find_engine_binaries
    from owlclaw.backends.hatchet.local.postgres import PostgresNotInstalledError, find_postgres_bin_dir

    try:
        find_engine_binaries()
        find_postgres_bin_dir()
    except (EngineNotInstalledError, PostgresNotInstalledError) as exc:
        _unavailable([str(exc)])


@pytest.fixture(scope="session")
def hatchet_engine() -> Iterator[HatchetEngine]:
    namespace = f"owlclaw-test-{uuid.uuid4().hex[:10]}"
    reasons: list[str] = []

    choice = _engine_choice()

    # 1. an engine the user runs
    token = os.environ.get("HATCHET_CLIENT_TOKEN")
    if token and choice is None:
        host_port = os.environ.get("HATCHET_CLIENT_HOST_PORT", "localhost:7077")
        tls = os.environ.get("HATCHET_CLIENT_TLS_STRATEGY", "tls")
        server_url = os.environ.get("HATCHET_CLIENT_SERVER_URL") or (
            f"{'http' if tls == 'none' else 'https'}://{host_port.rpartition(':')[0]}"
        )
        yield HatchetEngine(
            "HATCHET_CLIENT_TOKEN",
            token,
            host_port,
            server_url,
            tls,
            namespace,
            mode="lite" if tls == "none" else "production",
            state_database_url=os.environ.get("OWLCLAW_STATE_DATABASE_URL") or None,
        )
        return

    # 2. the locally built engine
    if choice != "containers":
        with _local_engine(namespace, reasons) as found:
            if found is not None:
                yield found
                return

    # 3. testcontainers (needs Docker)
    if choice != "local":
        with container_engine(namespace, reasons) as found:
            if found is not None:
                yield found
                return
    _unavailable(reasons)


@contextlib.contextmanager
def _local_engine(namespace: str, reasons: list[str]) -> Iterator[HatchetEngine | None]:
    """hatchet-lite built by install-engine.sh on a throw-away PostgreSQL; None if impossible."""
    from owlclaw.backends.hatchet.local import (
        EngineNotInstalledError,
        EngineStartError,
        LocalEngine,
        LocalPostgres,
        PostgresError,
        PostgresNotInstalledError,
        find_engine_binaries,
        find_postgres_bin_dir,
    )

    try:
        find_engine_binaries()
        find_postgres_bin_dir()
        pg = LocalPostgres().start()
        try:
            engine = LocalEngine(pg.database_url("hatchet"), startup_timeout=180)
            engine.start()
        except BaseException:
            pg.stop()
            raise
    except (EngineNotInstalledError, PostgresNotInstalledError, EngineStartError, PostgresError) as exc:
        reasons.append(f"local engine: {exc}")
        yield None
        return
    conn = engine.connection
    try:
        yield HatchetEngine(
            "local hatchet-lite",
            conn.token,
            conn.host_port,
            conn.server_url,
            "none",
            namespace,
            state_database_url=pg.database_url("owlclaw"),
        )
    finally:
        engine.stop()
        pg.stop()


# --------------------------------------------------------------------------
# testcontainers: PostgreSQL and hatchet-lite from the images .ci/build-images.sh
# builds, on the host's network (the daemon has no bridge) and free loopback ports

_ENGINE_CHOICES = ("containers", "local")
_REPO = Path(__file__).resolve().parents[2]
_LITE_IMAGE = "ghcr.io/hatchet-dev/hatchet/hatchet-lite:{version}"
_PG_IMAGE = "postgres:15-bookworm"
_TOKEN_ARGS = ("token", "create", "--config", "/config", "--name", "owlclaw")
_INITDB = "/docker-entrypoint-initdb.d/10-init-db.sql"


def _engine_choice() -> str | None:
    """``OWLCLAW_TEST_ENGINE``: ``containers``, ``local`` or unset (local, then containers)."""
    choice = os.environ.get("OWLCLAW_TEST_ENGINE") or None
    if choice is not None and choice not in _ENGINE_CHOICES:
        pytest.fail(f"OWLCLAW_TEST_ENGINE={choice!r}: expected one of {_ENGINE_CHOICES}", pytrace=False)
    return choice


def _container_logs(container: Any) -> str:
    try:
        out, err = container.get_logs()
        return (out + err).decode(errors="replace")[-3000:]
    except Exception as exc:  # noqa: BLE001 - logs only decorate a failure message
        return f"(no logs: {exc})"


@contextlib.contextmanager
def container_engine(namespace: str, reasons: list[str]) -> Iterator[HatchetEngine | None]:
    """hatchet-lite + PostgreSQL through testcontainers; None (with reasons) if impossible.

    Ryuk, testcontainers' reaper, is an image of its own that cannot be pulled
    here: it is disabled, and the ``with`` blocks remove the containers (and
    their anonymous volumes) instead."""
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        reasons.append(f"testcontainers: not installed ({exc.name}); pip install testcontainers")
        yield None
        return
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker here"
        reasons.append(f"testcontainers: no Docker daemon answers ({exc}); .ci/docker-daemon.sh start")
        yield None
        return
    from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION
    from owlclaw.backends.hatchet.local.processes import find_free_port, http_status

    lite_image = _LITE_IMAGE.format(version=ENGINE_VERSION)
    missing = missing_images()
    if missing:
        reasons.append(f"testcontainers: images {missing} not built; run .ci/build-images.sh")
        yield None
        return
    used: set[int] = set()
    ports = {}
    for name in ("pg", "grpc", "api", "health", "frontend", "proxy"):
        ports[name] = find_free_port(used)
        used.add(ports[name])
    hatchet_pw, owlclaw_pw = uuid.uuid4().hex, uuid.uuid4().hex
    pg = (
        DockerContainer(_PG_IMAGE)
        .with_kwargs(network_mode="host")
        .with_env("POSTGRES_PASSWORD", uuid.uuid4().hex)
        .with_env("HATCHET_DB_PASSWORD", hatchet_pw)
        .with_env("OWLCLAW_DB_PASSWORD", owlclaw_pw)
        .with_volume_mapping(str(_REPO / "deploy" / "init-db.sql"), _INITDB)
        .with_command(f"postgres -c listen_addresses=127.0.0.1 -c port={ports['pg']} -c max_connections=200")
    )
    lite = DockerContainer(lite_image).with_kwargs(network_mode="host")
    for key, value in _lite_env(ports, hatchet_pw).items():
        lite = lite.with_env(key, value)
    with pg:
        try:
            poll_until_blocking(
                lambda: pg.exec(["pg_isready", "-h", "127.0.0.1", "-p", str(ports["pg"]), "-d", "hatchet"]),
                lambda result: result[0] == 0,
                timeout=120,
                interval=1,
                what=f"PostgreSQL in its container to accept TCP on 127.0.0.1:{ports['pg']} (pg_isready)",
            )
        except PollTimeoutError as exc:
            reasons.append(f"testcontainers: {exc}\n--- postgres logs ---\n{_container_logs(pg)}")
            yield None
            return
        with lite:

            def create_token() -> tuple[int, str]:
                code, output = lite.exec(["/hatchet/hatchet-admin", *_TOKEN_ARGS])
                return int(code), output.decode(errors="replace")

            def ready() -> dict[str, int | None]:
                return {
                    "health": http_status(f"http://127.0.0.1:{ports['health']}/ready"),
                    "api": http_status(f"http://127.0.0.1:{ports['api']}/api/ready"),
                }

            try:
                # token create fails until migrate and quickstart are done
                _, output = poll_until_blocking(
                    create_token,
                    lambda result: result[0] == 0,
                    timeout=180,
                    interval=2,
                    what="hatchet-admin token create in the lite container to succeed (exit code, output)",
                )
                poll_until_blocking(
                    ready,
                    lambda status: set(status.values()) == {200},
                    timeout=180,
                    interval=1,
                    what="hatchet-lite's /ready and /api/ready to answer 200 (HTTP status of each)",
                )
            except PollTimeoutError as exc:
                reasons.append(f"testcontainers: {exc}\n--- hatchet-lite logs ---\n{_container_logs(lite)}")
                yield None
                return
            tokens = [line.strip() for line in output.splitlines() if line.strip().startswith("ey")]
            yield HatchetEngine(
                "testcontainers hatchet-lite",
                tokens[-1],
                f"127.0.0.1:{ports['grpc']}",
                f"http://127.0.0.1:{ports['api']}",
                "none",
                namespace,
                state_database_url=(
                    f"postgresql://owlclaw:{owlclaw_pw}@127.0.0.1:{ports['pg']}/owlclaw?sslmode=disable"
                ),
            )


def missing_images() -> list[str]:
    """The images of .ci/build-images.sh that the Docker daemon does not have."""
    import docker  # type: ignore[import-untyped]

    from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION

    client = docker.from_env()
    missing = []
    for name in (_PG_IMAGE, _LITE_IMAGE.format(version=ENGINE_VERSION)):
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            missing.append(name)
    return missing


def _lite_env(ports: dict[str, int], hatchet_pw: str) -> dict[str, str]:
    """deploy/compose.lite.yml's settings, on the given loopback ports."""
    return {
        "DATABASE_URL": f"postgresql://hatchet:{hatchet_pw}@127.0.0.1:{ports['pg']}/hatchet?sslmode=disable",
        "SERVER_URL": f"http://127.0.0.1:{ports['proxy']}",
        "SERVER_PORT": str(ports["api"]),
        "SERVER_GRPC_PORT": str(ports["grpc"]),
        "SERVER_GRPC_BIND_ADDRESS": "127.0.0.1",
        "SERVER_GRPC_BROADCAST_ADDRESS": f"127.0.0.1:{ports['grpc']}",
        "SERVER_GRPC_INSECURE": "t",
        "SERVER_HEALTHCHECK_PORT": str(ports["health"]),
        "LITE_FRONTEND_PORT": str(ports["frontend"]),
        "LITE_RUNTIME_PORT": str(ports["proxy"]),
        "SERVER_MSGQUEUE_KIND": "postgres",
        "SERVER_AUTH_COOKIE_DOMAIN": "localhost",
        "SERVER_AUTH_COOKIE_INSECURE": "t",
        "SERVER_AUTH_SET_EMAIL_VERIFIED": "t",
        "SERVER_LOGGER_LEVEL": "warn",
        "DATABASE_LOGGER_LEVEL": "warn",
    }


# --------------------------------------------------------------------------
# workers


@pytest.fixture(scope="session")
def conformance_worker(
    hatchet_engine: HatchetEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    worker = start_worker(hatchet_engine, tmp_path_factory.mktemp("workers"), name="conformance")
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Any]:
    """``spawn(engine)`` starts a worker for a test; all are stopped after it."""
    started: list[WorkerProcess] = []

    def spawn(engine: HatchetEngine, name: str | None = None) -> WorkerProcess:
        started.append(start_worker(engine, tmp_path / "workers", name=name))
        return started[-1]

    yield spawn
    for worker in started:
        worker.stop()


@pytest.fixture
def connect_scheduler() -> Any:
    """``async with connect_scheduler(engine, **settings) as s``: a connected
    HatchetScheduler with the conformance tasks."""
    return connected


@contextlib.asynccontextmanager
async def connected(engine: HatchetEngine, **overrides: Any) -> AsyncIterator[Any]:
    from owlclaw.backends.hatchet.backend import HatchetScheduler
    from owlclaw.scheduler.testing import register_conformance_tasks

    scheduler = HatchetScheduler(engine.config(**overrides))
    register_conformance_tasks(scheduler)
    async with scheduler:
        yield scheduler
