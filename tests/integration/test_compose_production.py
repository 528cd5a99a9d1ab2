"""deploy/compose.production.yml, started for real with Docker Compose v2 and
compose.production.hostnet.yml (the daemon here has no bridge): PostgreSQL,
the hatchet-migrate and hatchet-setup one-shots, hatchet-engine and
hatchet-api, from the images .ci/build-images.sh builds under the names the
file uses. The dashboard, RabbitMQ and worker profiles are not started (the
dashboard image is a node build not made here: docs/deployment.md).

One project per module, on free loopback ports, removed (volumes too) at the
end. Without Docker this module skips, except under CI, where it fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from compose_stack import (
    ROLE_CASES,
    ComposeStack,
    StackSpec,
    check_role_access,
    check_worker_cron_doctor_restart,
    open_stack,
)

from owlclaw.backends.hatchet.local.processes import http_status

pytestmark = pytest.mark.integration

PRODUCTION = StackSpec(
    label="compose.production.yml",
    files=("compose.production.yml", "compose.production.hostnet.yml"),
    ports=("PG", "API", "GRPC", "ENGINE_HEALTH", "API_HEALTH"),
    healthy=("postgres", "hatchet-engine", "hatchet-api"),
    # the command docs/deployment.md gives
    token_args=(
        *"run --rm --no-deps -T hatchet-setup /hatchet/hatchet-admin token create".split(),
        *"--config /hatchet/config --name owlclaw".split(),
    ),
    env={
        "HATCHET_ADMIN_EMAIL": "admin@example.com",
        # hatchet-admin's seed refuses a password without upper, lower and digit
        "HATCHET_ADMIN_PASSWORD": f"Owl{secrets.token_hex(12)}7",
        "HATCHET_COOKIE_INSECURE": "t",
    },
)
ONE_SHOTS = ("hatchet-migrate", "hatchet-setup")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with open_stack(PRODUCTION, tmp_path_factory.mktemp("compose-production")) as production:
        yield production


def test_engine_and_api_come_up_after_the_one_shots(stack: ComposeStack) -> None:
    rows = stack.containers()
    # the profiles (dashboard, rabbitmq, worker) start nothing
    assert stack.health() == {
        "postgres": "healthy",
        "hatchet-migrate": "exited",
        "hatchet-setup": "exited",
        "hatchet-engine": "healthy",
        "hatchet-api": "healthy",
    }
    assert {s: rows[s]["ExitCode"] for s in ONE_SHOTS} == dict.fromkeys(ONE_SHOTS, 0)
    assert http_status(f"http://127.0.0.1:{stack.ports['ENGINE_HEALTH']}/ready") == 200
    assert http_status(f"http://127.0.0.1:{stack.ports['API']}/api/ready") == 200


@pytest.mark.parametrize(("user", "database", "allowed"), ROLE_CASES)
def test_init_db_keeps_the_roles_apart(stack: ComposeStack, user: str, database: str, allowed: bool) -> None:
    check_role_access(stack, user, database, allowed)


async def test_worker_cron_doctor_and_restart_keeps_schedules(stack: ComposeStack, tmp_path: Path) -> None:
    await check_worker_cron_doctor_restart(stack, tmp_path)
