"""deploy/compose.lite.yml, started for real with Docker Compose v2 and the
host-network override (the daemon here has no bridge): the images are the ones
.ci/build-images.sh builds, under the names the file uses.

One project per module, on free loopback ports, removed (volumes too) at the
end. Without Docker this module skips, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import start_worker

from owlclaw.backends.hatchet.local.processes import find_free_port, http_status
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until, poll_until_blocking
from tests.integration.conftest import HatchetEngine, _unavailable, connected, missing_images

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FILES = ("compose.lite.yml", "compose.lite.hostnet.yml")
PORTS = ("PG", "API", "GRPC", "HEALTH", "LITE", "FRONTEND")
SERVICES = ("postgres", "hatchet-lite")


def compose_command() -> list[str]:
    """``$OWLCLAW_COMPOSE`` (a compose v2 binary) or ``docker compose``; fails/skips if neither."""
    explicit = os.environ.get("OWLCLAW_COMPOSE")
    if explicit:
        return [explicit]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    _unavailable(["Docker Compose v2: neither OWLCLAW_COMPOSE nor `docker compose`; .ci/install-compose.sh"])
    raise AssertionError("unreachable")


@dataclass
class LiteStack:
    """One compose project of compose.lite.yml on the host's network."""

    project: str
    env_file: Path
    ports: dict[str, int]
    passwords: dict[str, str] = field(repr=False)
    command: list[str]

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        files = [arg for name in FILES for arg in ("-f", str(DEPLOY / name))]
        argv = [*self.command, "-p", self.project, "--env-file", str(self.env_file), *files, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def health(self) -> dict[str, str]:
        """``service: health`` (or state, for a service without a healthcheck result yet)."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row.get("Health") or row.get("State", "") for row in rows}

    def up(self) -> None:
        self.compose("up", "-d")
        try:
            poll_until_blocking(
                self.health,
                lambda seen: all(seen.get(s) == "healthy" for s in SERVICES),
                timeout=300,
                interval=2,
                what=f"both services of {self.project} to be healthy (compose ps health)",
            )
        except PollTimeoutError as exc:
            logs = self.compose("logs", "--no-color", "--tail", "40", check=False).stdout
            raise AssertionError(f"{exc}\n--- compose logs ---\n{logs}") from None

    def psql(self, user: str, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        """psql in the postgres container, over TCP as ``user`` (password auth)."""
        return self.compose(
            "exec", "-T", "-e", f"PGPASSWORD={self.passwords[user]}", "postgres",
            "psql", "-h", "127.0.0.1", "-p", str(self.ports["PG"]), "-U", user, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-tAc", sql,
            check=False,
        )  # fmt: skip

    def token(self) -> str:
        # the command docs/deployment.md gives
        args = ("/hatchet-admin", "token", "create", "--config", "/config", "--name", "owlclaw")
        proc = poll_until_blocking(
            lambda: self.compose("exec", "-T", "hatchet-lite", *args, check=False),
            lambda p: p.returncode == 0,
            timeout=120,
            interval=2,
            what="hatchet-admin token create in the compose project",
        )
        return [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("ey")][-1]

    def engine(self, token: str, namespace: str) -> HatchetEngine:
        p = self.ports
        return HatchetEngine(
            "compose.lite.yml",
            token,
            f"127.0.0.1:{p['GRPC']}",
            f"http://127.0.0.1:{p['API']}",
            "none",
            namespace,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteStack]:
    import docker  # type: ignore[import-untyped]

    try:
        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker here"
        _unavailable([f"compose tests: no Docker daemon answers ({exc}); .ci/docker-daemon.sh start"])
    missing = missing_images()
    if missing:  # compose would try to pull them
        _unavailable([f"compose tests: images {missing} not built; run .ci/build-images.sh"])
    command = compose_command()
    used: set[int] = set()
    ports = {}
    for name in PORTS:
        ports[name] = find_free_port(used)
        used.add(ports[name])
    passwords = {role: secrets.token_hex(12) for role in ("postgres", "hatchet", "owlclaw")}
    env_file = tmp_path_factory.mktemp("compose") / "lite.env"
    lines = [f"OWLCLAW_{name}_PORT={port}" for name, port in ports.items()]
    lines += [f"{role.upper()}_DB_PASSWORD={pw}" for role, pw in passwords.items() if role != "postgres"]
    lines.append(f"POSTGRES_PASSWORD={passwords['postgres']}")
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lite = LiteStack(f"owlclaw-test-{uuid.uuid4().hex[:8]}", env_file, ports, passwords, command)
    try:
        lite.up()
        yield lite
    finally:
        lite.compose("down", "--volumes", "--timeout", "30", check=False)


def test_engine_comes_up(stack: LiteStack) -> None:
    assert stack.health() == {"postgres": "healthy", "hatchet-lite": "healthy"}
    assert http_status(f"http://127.0.0.1:{stack.ports['HEALTH']}/ready") == 200
    assert http_status(f"http://127.0.0.1:{stack.ports['API']}/api/ready") == 200


@pytest.mark.parametrize(
    ("user", "database", "allowed"),
    [
        ("hatchet", "hatchet", True),
        ("owlclaw", "owlclaw", True),
        ("hatchet", "owlclaw", False),
        ("owlclaw", "hatchet", False),
    ],
)
def test_init_db_keeps_the_roles_apart(stack: LiteStack, user: str, database: str, allowed: bool) -> None:
    proc = stack.psql(user, database, "SELECT current_user, current_database(), current_setting('TimeZone')")
    if allowed:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"{user}|{database}|UTC"
    else:
        assert proc.returncode != 0
        assert f'permission denied for database "{database}"' in proc.stderr, proc.stderr


def _doctor(engine: HatchetEngine, directory: Path) -> tuple[int, Any]:
    config = directory / "doctor.yaml"
    document = {"scheduler": {"backend": "hatchet", "hatchet": engine.settings()}}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "owlclaw.scheduler.cli", "doctor", "--json"],
        env=engine.worker_env(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else proc.stderr


async def _cron_fired(engine: HatchetEngine, after: set[str]) -> str:
    """Wait for a successful run of conf_cron_target not in ``after``; its id."""
    async with connected(engine) as scheduler:

        async def new_successes() -> list[str]:
            runs = await scheduler.list_tasks("conf_cron_target", states=[TaskState.SUCCEEDED])
            return [r.id for r in runs if r.id not in after]

        fresh = await poll_until(
            new_successes, timeout=120, interval=1, what="a new successful run of the every-2-s cron"
        )
        return fresh[0]


async def test_worker_cron_doctor_and_restart_keeps_schedules(stack: LiteStack, tmp_path: Path) -> None:
    engine = stack.engine(stack.token(), f"owlclaw-compose-{uuid.uuid4().hex[:8]}")
    worker = start_worker(engine, tmp_path / "workers", name="compose")
    try:
        code, findings = _doctor(engine, tmp_path)
        assert code == 0, findings
        by_check = {f["check"]: f for f in findings}
        assert all(f["level"] == "ok" for f in findings), findings
        assert "compose" in by_check["workers"]["detail"]

        async with connected(engine) as scheduler:
            tick = await scheduler.add_cron("conf_cron_target", "*/2 * * * * *", {"tick": True})
            yearly = await scheduler.add_cron("conf_cron_target", "0 0 1 1 *", {"yearly": True})
            later = await scheduler.schedule_task("conf_echo", {"value": "later"}, delay_seconds=3600)
        first = await _cron_fired(engine, set())
    finally:
        worker.stop()

    async with connected(engine) as scheduler:
        crons_before = {c.id: (c.expression, c.payload) for c in await scheduler.list_crons()}
        scheduled_before = {t.id for t in await scheduler.list_scheduled_tasks()}
        seen = {t.id for t in await scheduler.list_tasks("conf_cron_target", limit=100)}
    assert {tick, yearly} <= crons_before.keys() and later in scheduled_before

    stack.compose("down", "--timeout", "30")
    assert stack.health() == {}, "containers left after compose down"
    stack.up()

    # the same token still works: keys and config live in the lite_hatchet_config volume
    async with connected(engine) as scheduler:
        crons_after = {c.id: (c.expression, c.payload) for c in await scheduler.list_crons()}
        scheduled_after = {t.id for t in await scheduler.list_scheduled_tasks()}
    assert crons_after == crons_before
    assert scheduled_after == scheduled_before

    worker = start_worker(engine, tmp_path / "workers-after", name="compose-after")
    try:
        again = await _cron_fired(engine, seen | {first})
        assert again != first
        code, findings = _doctor(engine, tmp_path)
        assert code == 0, findings
        async with connected(engine) as scheduler:
            await scheduler.remove_cron(tick)
    finally:
        worker.stop()
