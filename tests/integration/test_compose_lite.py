"""deploy/compose.lite.yml, started for real with Docker Compose v2 and the
host-network override (the daemon here has no bridge): the images are the ones
.ci/build-images.sh builds, under the names the file uses.

One project per module, on free loopback ports, removed (volumes too) at the
end. Without Docker this module skips, except under CI, where it fails.
"""

from __future__ import annotations

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

LITE = StackSpec(
    label="compose.lite.yml",
    files=("compose.lite.yml", "compose.lite.hostnet.yml"),
    ports=("PG", "API", "GRPC", "HEALTH", "LITE", "FRONTEND"),
    healthy=("postgres", "hatchet-lite"),
    # the command docs/deployment.md gives
    token_args=tuple(
        "exec -T hatchet-lite /hatchet-admin token create --config /config --name owlclaw".split()
    ),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    with open_stack(LITE, tmp_path_factory.mktemp("compose-lite")) as lite:
        yield lite


def test_engine_comes_up(stack: ComposeStack) -> None:
    assert stack.health() == {"postgres": "healthy", "hatchet-lite": "healthy"}
    assert http_status(f"http://127.0.0.1:{stack.ports['HEALTH']}/ready") == 200
    assert http_status(f"http://127.0.0.1:{stack.ports['API']}/api/ready") == 200


@pytest.mark.parametrize(("user", "database", "allowed"), ROLE_CASES)
def test_init_db_keeps_the_roles_apart(stack: ComposeStack, user: str, database: str, allowed: bool) -> None:
    check_role_access(stack, user, database, allowed)


async def test_worker_cron_doctor_and_restart_keeps_schedules(stack: ComposeStack, tmp_path: Path) -> None:
    await check_worker_cron_doctor_restart(stack, tmp_path)
