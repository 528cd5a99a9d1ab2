"""A deploy/compose.*.yml file started for real with Docker Compose v2 and its
host-network override (the daemon here has no bridge), on free loopback ports,
with the images .ci/build-images.sh builds under the names the files use.

Shared by test_compose_lite.py and test_compose_production.py: the stack, its
fixture body, and the checks both files must pass (init-db.sql's roles, a
worker, a cron, ``doctor``, ``down`` + ``up``). Without Docker the modules
skip, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
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

import yaml
from processes import start_worker

from owlclaw.backends.hatchet.local.processes import find_free_port
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until, poll_until_blocking
from tests.integration.conftest import HatchetEngine, _unavailable, connected

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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


@dataclass(frozen=True)
class StackSpec:
    """What differs between the deploy files."""

    label: str  # names the stack in messages and the engine
    files: tuple[str, ...]  # the file, then its host-network override
    ports: tuple[str, ...]  # OWLCLAW_<NAME>_PORT variables of the override
    healthy: tuple[str, ...]  # services that must report "healthy"
    token_args: tuple[str, ...]  # compose arguments that print a new API token
    env: dict[str, str] = field(default_factory=dict, repr=False)  # more variables for the env file


@dataclass
class ComposeStack:
    """One compose project of a deploy file on the host's network."""

    spec: StackSpec
    project: str
    env_file: Path
    ports: dict[str, int]
    passwords: dict[str, str] = field(repr=False)
    command: list[str]

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        files = [arg for name in self.spec.files for arg in ("-f", str(DEPLOY / name))]
        argv = [*self.command, "-p", self.project, "--env-file", str(self.env_file), *files, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def containers(self) -> dict[str, dict[str, Any]]:
        """``service: compose ps row`` for every container, running or exited."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def health(self) -> dict[str, str]:
        """``service: health`` (or state, for a service without a healthcheck result yet)."""
        return {s: row.get("Health") or row.get("State", "") for s, row in self.containers().items()}

    def _logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout

    def up(self) -> None:
        proc = self.compose("up", "-d", check=False)
        if proc.returncode != 0:
            logs = self._logs()
            raise AssertionError(
                f"compose up -d exited {proc.returncode}:\n{proc.stderr}\n--- logs ---\n{logs}"
            )
        try:
            poll_until_blocking(
                self.health,
                lambda seen: all(seen.get(s) == "healthy" for s in self.spec.healthy),
                timeout=300,
                interval=2,
                what=f"{self.spec.healthy} of {self.project} to be healthy (compose ps health)",
            )
        except PollTimeoutError as exc:
            raise AssertionError(f"{exc}\n--- compose logs ---\n{self._logs()}") from None

    def psql(self, user: str, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        """psql in the postgres container, over TCP as ``user`` (password auth)."""
        return self.compose(
            "exec", "-T", "-e", f"PGPASSWORD={self.passwords[user]}", "postgres",
            "psql", "-h", "127.0.0.1", "-p", str(self.ports["PG"]), "-U", user, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-tAc", sql,
            check=False,
        )  # fmt: skip

    def token(self) -> str:
        """A new API token, by the command docs/deployment.md gives for this file."""
        proc = poll_until_blocking(
            lambda: self.compose(*self.spec.token_args, check=False),
            lambda p: p.returncode == 0,
            timeout=120,
            interval=2,
            what=f"hatchet-admin token create in {self.project}",
        )
        return [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("ey")][-1]

    def engine(self, token: str, namespace: str) -> HatchetEngine:
        p = self.ports
        return HatchetEngine(
            self.spec.label,
            token,
            f"127.0.0.1:{p['GRPC']}",
            f"http://127.0.0.1:{p['API']}",
            "none",
            namespace,
        )


@contextlib.contextmanager
def open_stack(spec: StackSpec, directory: Path) -> Iterator[ComposeStack]:
    """The stack up and healthy; removed (volumes too) on exit."""
    import docker  # type: ignore[import-untyped]

    client = docker.from_env()
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Docker here"
        _unavailable([f"compose tests: no Docker daemon answers ({exc}); .ci/docker-daemon.sh start"])
    command = compose_command()
    used: set[int] = set()
    ports = {}
    for name in spec.ports:
        ports[name] = find_free_port(used)
        used.add(ports[name])
    passwords = {role: secrets.token_hex(12) for role in ("postgres", "hatchet", "owlclaw")}
    env_file = directory / "stack.env"
    lines = [f"OWLCLAW_{name}_PORT={port}" for name, port in ports.items()]
    lines += [f"{role.upper()}_DB_PASSWORD={pw}" for role, pw in passwords.items() if role != "postgres"]
    lines.append(f"POSTGRES_PASSWORD={passwords['postgres']}")
    lines += [f"{key}={value}" for key, value in spec.env.items()]
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env_file.chmod(0o600)
    stack = ComposeStack(spec, f"owlclaw-test-{uuid.uuid4().hex[:8]}", env_file, ports, passwords, command)
    missing = []  # compose would try to pull them (no registry answers here)
    for image in stack.compose("config", "--images").stdout.split():
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        _unavailable([f"compose tests: images {missing} not built; run .ci/build-images.sh"])
    try:
        stack.up()
        yield stack
    finally:
        stack.compose("down", "--volumes", "--timeout", "30", check=False)


ROLE_CASES = [
    ("hatchet", "hatchet", True),
    ("owlclaw", "owlclaw", True),
    ("hatchet", "owlclaw", False),
    ("owlclaw", "hatchet", False),
]


def check_role_access(stack: ComposeStack, user: str, database: str, allowed: bool) -> None:
    """init-db.sql: each role reaches its own database (in UTC) and not the other's."""
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


async def check_worker_cron_doctor_restart(stack: ComposeStack, directory: Path) -> None:
    """A worker connects with a token, ``doctor`` is green, a cron fires, and
    ``compose down`` + ``up`` keeps every cron, scheduled run and the token."""
    engine = stack.engine(stack.token(), f"owlclaw-compose-{uuid.uuid4().hex[:8]}")
    worker = start_worker(engine, directory / "workers", name="compose")
    try:
        code, findings = _doctor(engine, directory)
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

    # the same token still works: keys and config live in a named volume
    async with connected(engine) as scheduler:
        crons_after = {c.id: (c.expression, c.payload) for c in await scheduler.list_crons()}
        scheduled_after = {t.id for t in await scheduler.list_scheduled_tasks()}
    assert crons_after == crons_before
    assert scheduled_after == scheduled_before

    worker = start_worker(engine, directory / "workers-after", name="compose-after")
    try:
        again = await _cron_fired(engine, seen | {first})
        assert again != first
        code, findings = _doctor(engine, directory)
        assert code == 0, findings
        async with connected(engine) as scheduler:
            await scheduler.remove_cron(tick)
    finally:
        worker.stop()
