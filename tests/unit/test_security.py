"""Secrets stay secret, YAML is loaded safely, substitution reads only the
environment, and production refuses plain-text gRPC to a remote host."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import ConfigError, SchedulerConnectionError
from owlclaw.scheduler.registry import create_scheduler


def _part(value: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


MARKER = "owlclawTOPSECRET"
# well-formed for the SDK, for no server; MARKER shows up in any leak of it or its parts
FAKE_TOKEN = (
    f"{_part({'alg': 'HS256', 'typ': 'JWT'})}."
    + _part(
        {
            "sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52",
            "server_url": "http://127.0.0.1",
            "grpc_broadcast_address": "127.0.0.1:7077",
            "marker": MARKER,
        }
    )
    + f".{MARKER}signature"
)
SECRET_PIECES = [FAKE_TOKEN, MARKER, *FAKE_TOKEN.split(".")]


def assert_no_secret(text: str, where: str) -> None:
    for piece in SECRET_PIECES:
        assert piece not in text, f"the token (or a part of it) appears in {where}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _exception_text(exc: BaseException) -> str:
    """Everything an exception can show: messages, reprs, args and the
    formatted chain (__cause__ and __context__)."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _lite_yaml(tmp_path: Path, **extra: str) -> Path:
    settings = {
        "mode": "lite",
        "api_token": "${OWLCLAW_TEST_TOKEN}",
        "host_port": f"127.0.0.1:{_closed_port()}",
        "connect_timeout_seconds": "3",
        **extra,
    }
    body = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    path = tmp_path / "owlclaw.yaml"
    path.write_text(f"scheduler:\n  backend: hatchet\n  hatchet:\n{body}", encoding="utf-8")
    return path


def test_token_is_masked_in_config_reprs_and_dumps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """repr, str and JSON dumps of the configuration never show the token."""
    monkeypatch.setenv("OWLCLAW_TEST_TOKEN", FAKE_TOKEN)
    config = SchedulerConfig.load(_lite_yaml(tmp_path))
    hatchet = HatchetConfig.model_validate(config.section("hatchet"))
    scheduler = create_scheduler(config)
    assert hatchet.api_token is not None
    assert hatchet.api_token.get_secret_value() == FAKE_TOKEN  # the real value is still there
    for text in (repr(hatchet), str(hatchet), hatchet.model_dump_json(), repr(scheduler), str(scheduler)):
        assert_no_secret(text, "a repr or dump")


async def test_token_never_appears_in_logs_or_exception_chains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed connect logs (at DEBUG, every logger) and raises without the token anywhere."""
    monkeypatch.setenv("OWLCLAW_TEST_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    scheduler = create_scheduler(SchedulerConfig.load(_lite_yaml(tmp_path)))
    with pytest.raises(SchedulerConnectionError) as caught:
        await scheduler.connect()
    assert_no_secret(_exception_text(caught.value), "the exception chain")
    assert_no_secret(caplog.text, "the logs")
    assert_no_secret("\n".join(repr(r.__dict__) for r in caplog.records), "log records")


async def test_malformed_token_error_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A token the SDK cannot parse is refused without quoting it."""
    bad = f"not-a-jwt-{MARKER}"
    monkeypatch.setenv("OWLCLAW_TEST_TOKEN", bad)
    scheduler = create_scheduler(SchedulerConfig.load(_lite_yaml(tmp_path)))
    with pytest.raises(SchedulerConnectionError, match="Hatchet API token") as caught:
        await scheduler.connect()
    text = _exception_text(caught.value)
    assert bad not in text and MARKER not in text


def test_config_errors_do_not_echo_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A configuration error next to the token does not print it."""
    monkeypatch.setenv("OWLCLAW_TEST_TOKEN", FAKE_TOKEN)
    with pytest.raises(ConfigError) as caught:
        create_scheduler(SchedulerConfig.load(_lite_yaml(tmp_path, slots="0")))
    assert_no_secret(_exception_text(caught.value), "a ConfigError")
    with pytest.raises(ValueError) as raw:  # pydantic's own error, before owlclaw wraps it
        HatchetConfig.model_validate({"api_token": [FAKE_TOKEN], "mode": "lite", "host_port": "h:1"})
    assert_no_secret(_exception_text(raw.value), "a validation error on api_token itself")
    with pytest.raises(ConfigError) as caught:
        create_scheduler(
            SchedulerConfig.from_mapping({"backend": "hatchet", "hatchet": {"api_token": [FAKE_TOKEN]}})
        )
    assert_no_secret(_exception_text(caught.value), "a ConfigError on api_token itself")


@pytest.mark.parametrize(
    ("args", "code", "shows"),
    [
        pytest.param(["config", "show", "-v"], 0, "api_token: '**********'", id="config-show--v"),
        pytest.param(["config", "show", "--json"], 0, '"api_token": "**********"', id="config-show---json"),
        # nothing listens on the configured port: doctor reports the failure, status exits 6
        pytest.param(["doctor", "-v"], 1, "[FAIL] connect: ", id="doctor--v"),
        pytest.param(
            ["status", "5d0c0000-0000-0000-0000-000000000000", "-v"],
            6,
            "error: ",
            id="status--v",
        ),
    ],
)
def test_cli_output_never_shows_the_token(tmp_path: Path, args: list[str], code: int, shows: str) -> None:
    """Every CLI command, verbose or JSON, prints no token (stdout and stderr).

    Each must also get as far as it can with this configuration (its exit code
    and what it prints are checked): a command that crashed before reading the
    token would show none and prove nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
    env.update(
        OWLCLAW_TEST_TOKEN=FAKE_TOKEN,
        HATCHET_CLIENT_TOKEN=FAKE_TOKEN,
        OWLCLAW_CONFIG=str(_lite_yaml(tmp_path)),
    )
    result = subprocess.run(
        [sys.executable, "-m", "owlclaw.scheduler.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = result.stdout + result.stderr
    assert (result.returncode, shows in said, "Traceback" in said) == (code, True, False), (
        f"`owlclaw-scheduler {' '.join(args)}` exited {result.returncode} (want {code}, printing {shows!r}); "
        f"it printed:\n{said[-2000:]}"
    )
    assert_no_secret(said, f"`owlclaw-scheduler {' '.join(args)}`")


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    """owlclaw.yaml is parsed with the safe loader: a !!python tag is a ConfigError and runs nothing."""
    witness = tmp_path / "pwned"
    path = tmp_path / "owlclaw.yaml"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        path.write_text(f'scheduler: {tag} ["touch {witness}"]\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="not valid YAML"):
            SchedulerConfig.load(path)
    path.write_text("scheduler:\n  backend: !!python/name:os.system\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        SchedulerConfig.load(path)
    assert not witness.exists()


@pytest.mark.parametrize(
    "value",
    ["$(touch {w})", "`touch {w}`", "${{OWLCLAW_UNSET_X:-$(touch {w})}}", "$HOME", "~/x", "${{HOME"],
)
def test_substitution_reads_only_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """${VAR} takes environment values only: no command runs, no file is read, other text stays literal."""
    monkeypatch.delenv("OWLCLAW_UNSET_X", raising=False)
    witness = tmp_path / "ran"
    text = value.format(w=witness)
    path = tmp_path / "owlclaw.yaml"
    path.write_text(f"scheduler:\n  memory_note: '{text}'\n", encoding="utf-8")
    loaded = SchedulerConfig.load(path)
    expected = (
        text.replace("${OWLCLAW_UNSET_X:-", "").removesuffix("}") if "OWLCLAW_UNSET_X" in text else text
    )
    assert loaded.model_extra == {"memory_note": expected}
    assert not witness.exists()


def test_substitution_does_not_read_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable named like a file (or *_FILE) is looked up in the environment only."""
    (tmp_path / "SECRET_FILE").write_text(MARKER, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_FILE", raising=False)
    path = tmp_path / "owlclaw.yaml"
    path.write_text("scheduler:\n  backend: ${SECRET_FILE}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="SECRET_FILE is not set") as caught:
        SchedulerConfig.load(path)
    assert MARKER not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("hatchet.localhost", True),
        ("hatchet.example.com", False),
        ("10.0.0.5", False),
        ("[2001:db8::1]", False),
        ("localhost.example.com", False),
        ("0.0.0.0", False),
    ],
)
def test_production_plain_grpc_only_to_loopback(host: str, allowed: bool) -> None:
    """Production with tls_strategy none is allowed to a loopback host, refused elsewhere."""
    settings = {"api_token": FAKE_TOKEN, "host_port": f"{host}:7070", "tls_strategy": "none"}
    if allowed:
        assert HatchetConfig.model_validate(settings).effective_tls_strategy == "none"
    else:
        with pytest.raises(ValueError, match="allow_insecure_grpc: true") as caught:
            HatchetConfig.model_validate(settings)
        assert_no_secret(str(caught.value), "the refusal")


def test_production_plain_grpc_to_a_remote_host_needs_the_explicit_setting() -> None:
    """allow_insecure_grpc: true is the only way to plain-text gRPC to a remote host in production."""
    settings = {
        "api_token": FAKE_TOKEN,
        "host_port": "hatchet.internal:7070",
        "tls_strategy": "none",
        "allow_insecure_grpc": True,
    }
    assert HatchetConfig.model_validate(settings).effective_tls_strategy == "none"
    assert HatchetConfig.model_validate({**settings, "tls_strategy": "tls"}).effective_tls_strategy == "tls"
