"""One table of every bad input users can give: the scheduling API (BAD_CALLS,
shared with the conformance suite, so Hatchet is held to the same rows) and
the configuration (owlclaw.yaml, environment, token, server address).
Each row: the error type, and a phrase of the message that names the fix."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import (
    BackendNotFoundError,
    ConfigError,
    SchedulerConnectionError,
    SchedulerError,
)
from owlclaw.scheduler.registry import create_scheduler
from owlclaw.scheduler.testing import register_conformance_tasks
from owlclaw.scheduler.testing.conformance import BAD_CALLS, BadCall, check_bad_call


def _jwt(claims: dict[str, str]) -> str:
    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


# a well-formed token for no server, with a marker to search output for
FAKE_TOKEN = _jwt(
    {
        "sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52",
        "server_url": "http://127.0.0.1",
        "grpc_broadcast_address": "127.0.0.1:7077",
        "marker": "owlclaw-fake-secret",
    }
)


@dataclass(frozen=True)
class BadConfig:
    id: str
    yaml: str  # owlclaw.yaml text
    error: type[SchedulerError]
    fix: str
    connect: bool = False  # the error comes from connect(), not from loading


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _hatchet(**settings: str) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    return f"scheduler:\n  backend: hatchet\n  hatchet:\n{lines}"


_LITE = {"mode": "lite", "api_token": FAKE_TOKEN, "connect_timeout_seconds": "5"}

BAD_CONFIGS: list[BadConfig] = [
    BadConfig("yaml-syntax", "scheduler: [unclosed\n", ConfigError, "not valid YAML"),
    BadConfig(
        "yaml-python-tag", "scheduler: !!python/object/apply:os.system ['true']\n", ConfigError, "YAML"
    ),
    BadConfig("yaml-top-level-list", "- scheduler\n", ConfigError, "top level must be a mapping"),
    BadConfig("yaml-section-not-mapping", "scheduler: memory\n", ConfigError, "must be a mapping"),
    BadConfig("backend-unknown", "scheduler:\n  backend: nosuch\n", BackendNotFoundError, "backend"),
    BadConfig("backend-section-not-mapping", "scheduler:\n  memory: 5\n", ConfigError, "mapping of settings"),
    BadConfig(
        "memory-unknown-key", "scheduler:\n  memory:\n    slotz: 5\n", ConfigError, "check its spelling"
    ),
    BadConfig(
        "memory-slots-zero",
        "scheduler:\n  memory:\n    slots: 0\n",
        ConfigError,
        "greater than or equal to 1",
    ),
    BadConfig("memory-slots-text", "scheduler:\n  memory:\n    slots: many\n", ConfigError, "valid integer"),
    BadConfig(
        "env-unset", "scheduler:\n  backend: ${OWLCLAW_TEST_UNSET_VAR}\n", ConfigError, "export OWLCLAW_TEST"
    ),
    BadConfig(
        "hatchet-unknown-key", _hatchet(tokn="x", api_token=FAKE_TOKEN), ConfigError, "check its spelling"
    ),
    BadConfig("hatchet-mode", _hatchet(mode="cloud"), ConfigError, "'production'"),
    BadConfig("token-missing", _hatchet(host_port="h:443"), ConfigError, "export HATCHET_CLIENT_TOKEN"),
    BadConfig(
        "token-missing-lite",
        _hatchet(mode="lite", host_port="h:7077"),
        ConfigError,
        "hatchet-admin token create",
    ),
    BadConfig("host-port-missing", _hatchet(api_token=FAKE_TOKEN), ConfigError, "HATCHET_CLIENT_HOST_PORT"),
    BadConfig(
        "host-port-no-port", _hatchet(api_token=FAKE_TOKEN, host_port="hatchet"), ConfigError, "host:port"
    ),
    BadConfig(
        "host-port-bad-port", _hatchet(api_token=FAKE_TOKEN, host_port="h:99999"), ConfigError, "host:port"
    ),
    BadConfig(
        "server-url", _hatchet(**_LITE, host_port="h:1", server_url="ftp://h"), ConfigError, "http(s) URL"
    ),
    BadConfig(
        "namespace", _hatchet(**_LITE, host_port="h:1", namespace="'a b'"), ConfigError, "letters, digits"
    ),
    BadConfig(
        "namespace-underscore",
        _hatchet(**_LITE, host_port="h:1", namespace="prod_eu"),
        ConfigError,
        "'prod-eu'",
    ),
    BadConfig("tls-strategy", _hatchet(**_LITE, host_port="h:1", tls_strategy="ssl"), ConfigError, "'tls'"),
    BadConfig(
        "production-plain-grpc-remote",
        _hatchet(api_token=FAKE_TOKEN, host_port="hatchet.example.com:7070", tls_strategy="none"),
        ConfigError,
        "allow_insecure_grpc: true",
    ),
    BadConfig("embedded-no-database", _hatchet(mode="embedded"), ConfigError, "database_url"),
    BadConfig(
        "embedded-database-url",
        _hatchet(mode="embedded", database_url="mysql://u:secret@h/db"),
        ConfigError,
        "postgresql://",
    ),
    BadConfig(
        "slots-zero", _hatchet(**_LITE, host_port="h:1", slots="0"), ConfigError, "greater than or equal"
    ),
    BadConfig(
        "token-malformed",
        _hatchet(mode="lite", api_token="not-a-jwt", host_port="127.0.0.1:1"),
        SchedulerConnectionError,
        "is api_token a Hatchet API token",
        connect=True,
    ),
    BadConfig(
        "server-unreachable",
        _hatchet(**_LITE, host_port=f"127.0.0.1:{_closed_port()}"),
        SchedulerConnectionError,
        "is the engine running",
        connect=True,
    ),
]


@pytest.fixture
async def memory() -> AsyncIterator[MemoryScheduler]:
    scheduler = MemoryScheduler(clock=VirtualClock())
    register_conformance_tasks(scheduler)
    async with scheduler:
        await scheduler.start_worker()
        yield scheduler


async def _check_config(case: BadConfig, tmp_path: Path) -> None:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(case.yaml, encoding="utf-8")
    with pytest.raises(case.error) as caught:
        scheduler = create_scheduler(SchedulerConfig.load(path))
        assert case.connect, f"{case.id}: loading succeeded"
        await scheduler.connect()
    message = str(caught.value)
    assert case.fix in message, f"{case.id}: the message does not say {case.fix!r}: {message}"
    assert FAKE_TOKEN not in message
    assert "secret" not in message


TABLE: list[Any] = [pytest.param(c, id=f"api-{c.id}") for c in BAD_CALLS] + [
    pytest.param(c, id=f"config-{c.id}") for c in BAD_CONFIGS
]


@pytest.mark.parametrize("case", TABLE)
async def test_bad_input_raises_a_typed_error_that_names_the_fix(
    case: BadCall | BadConfig, memory: MemoryScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every bad input raises its owlclaw error type, whose message names the fix."""
    for name in ("HATCHET_CLIENT_TOKEN", "HATCHET_CLIENT_HOST_PORT", "OWLCLAW_SCHEDULER_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    if isinstance(case, BadCall):
        await check_bad_call(memory, case)
    else:
        await _check_config(case, tmp_path)


def test_table_covers_every_kind_of_bad_input() -> None:
    """The table keeps a row for each kind the issue lists (guards against rows being dropped)."""
    ids = {c.id for c in BAD_CALLS} | {c.id for c in BAD_CONFIGS}
    for wanted in [
        "payload-too-big",
        "payload-datetime",
        "delay-zero",
        "at-naive",
        "cron-minute-61",
        "task-priority-4",
        "yaml-syntax",
        "memory-unknown-key",
        "token-missing",
        "token-malformed",
        "server-unreachable",
        "production-plain-grpc-remote",
    ]:
        assert wanted in ids
