"""A Hatchet engine for the integration tests, and workers in subprocesses.

``hatchet_engine`` (one per session) finds an engine in this order:

1. ``HATCHET_CLIENT_TOKEN`` (with ``HATCHET_CLIENT_HOST_PORT`` and
   ``HATCHET_CLIENT_SERVER_URL``) names one you run yourself;
2. the locally built hatchet-lite (``bash .ci/install-engine.sh``) on a
   throw-away PostgreSQL (``bash .ci/install-postgres.sh``);
3. the ``hatchet-lite`` image through testcontainers, if a Docker engine answers.

If none can start, the tests are skipped with the reasons, except under CI
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

    # 1. an engine the user runs
    token = os.environ.get("HATCHET_CLIENT_TOKEN")
    if token:
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
        )
        return

    # 2. the locally built engine
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

    local: tuple[Any, Any] | None = None
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
        local = (pg, engine)
    except (EngineNotInstalledError, PostgresNotInstalledError, EngineStartError, PostgresError) as exc:
        reasons.append(f"local engine: {exc}")
    if local is not None:
        pg, engine = local
        conn = engine.connection
        try:
            yield HatchetEngine(
                "local hatchet-lite", conn.token, conn.host_port, conn.server_url, "none", namespace
            )
        finally:
            engine.stop()
            pg.stop()
        return

    # 3. testcontainers (needs Docker)
    with _container_engine(reasons) as found:
        if found is not None:
            token, host_port, server_url = found
            yield HatchetEngine(
                "testcontainers hatchet-lite", token, host_port, server_url, "none", namespace
            )
            return
    _unavailable(reasons)


@contextlib.contextmanager
def _container_engine(reasons: list[str]) -> Iterator[tuple[str, str, str] | None]:
    """hatchet-lite + PostgreSQL in Docker via testcontainers; None if impossible."""
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.network import Network
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        reasons.append(f"testcontainers: not installed ({exc.name}); pip install testcontainers[postgres]")
        yield None
        return
    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker here"
        reasons.append(f"testcontainers: no Docker engine answers ({type(exc).__name__})")
        yield None
        return
    from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION

    with (
        Network() as network,
        PostgresContainer("postgres:16", username="hatchet", password="hatchet", dbname="hatchet")
        .with_network(network)
        .with_network_aliases("postgres") as _pg,
        DockerContainer(f"ghcr.io/hatchet-dev/hatchet/hatchet-lite:{ENGINE_VERSION}")
        .with_network(network)
        .with_env("DATABASE_URL", "postgresql://hatchet:hatchet@postgres:5432/hatchet?sslmode=disable")
        .with_env("SERVER_AUTH_COOKIE_INSECURE", "t")
        .with_env("SERVER_GRPC_INSECURE", "t")
        .with_env("SERVER_GRPC_BROADCAST_ADDRESS", "localhost:7077")
        .with_exposed_ports(8888, 7077) as lite,
    ):

        def create_token() -> tuple[int, str]:
            code, output = lite.exec(
                [
                    "/hatchet-admin",
                    "token",
                    "create",
                    "--config",
                    "/config",
                    "--tenant-id",
                    "707d0855-80ab-4e1f-a156-f1c4546cbf52",
                ]
            )
            return int(code), output.decode().strip()

        token = ""
        try:
            # token create fails until the engine in the container is ready
            _, output = poll_until_blocking(
                create_token,
                lambda result: result[0] == 0,
                timeout=120,
                interval=2,
                what="hatchet-admin token create to succeed (exit code, output)",
            )
            token = output.splitlines()[-1]
        except PollTimeoutError as exc:
            reasons.append(f"testcontainers: hatchet-lite started but no token could be created: {exc}")
            yield None
            return
        host = lite.get_container_host_ip()
        yield token, f"{host}:{lite.get_exposed_port(7077)}", f"http://{host}:{lite.get_exposed_port(8888)}"


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
