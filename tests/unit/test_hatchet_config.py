"""HatchetConfig: validation, environment fallbacks, and the token never shown."""

from __future__ import annotations

import logging

import pytest

from owlclaw.backends.hatchet.config import ENV_FALLBACKS, HatchetConfig
from owlclaw.scheduler.config import SchedulerConfig, validate_section
from owlclaw.scheduler.errors import ConfigError

TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ENV_FALLBACKS.values():
        monkeypatch.delenv(env, raising=False)


def _validate(section: dict[str, object]) -> HatchetConfig:
    config = SchedulerConfig.from_mapping({"backend": "hatchet", "hatchet": section}, source="owlclaw.yaml")
    model = validate_section(HatchetConfig, config, "hatchet")
    assert isinstance(model, HatchetConfig)
    return model


def test_production_needs_tls_token_and_host() -> None:
    cfg = _validate({"api_token": TOKEN, "host_port": "hatchet.example.com:443"})
    assert cfg.mode == "production"
    assert cfg.effective_tls_strategy == "tls"
    assert cfg.namespace == "owlclaw"
    assert cfg.slots == 200
    assert cfg.api_token is not None and cfg.api_token.get_secret_value() == TOKEN


def test_production_refuses_tls_none_and_says_what_to_change() -> None:
    with pytest.raises(ConfigError) as info:
        _validate({"api_token": TOKEN, "host_port": "h:443", "tls_strategy": "none"})
    message = str(info.value)
    assert "owlclaw.yaml" in message and "scheduler.hatchet" in message
    assert "tls_strategy" in message and "lite" in message
    assert TOKEN not in message


@pytest.mark.parametrize("mode", ["production", "lite"])
def test_missing_token_names_the_setting_and_env(mode: str) -> None:
    with pytest.raises(ConfigError, match="HATCHET_CLIENT_TOKEN"):
        _validate({"mode": mode, "host_port": "h:7077"})


def test_lite_allows_plain_connections_and_defaults_to_them() -> None:
    cfg = _validate({"mode": "lite", "api_token": TOKEN, "host_port": "localhost:7077"})
    assert cfg.effective_tls_strategy == "none"


def test_embedded_requires_a_postgres_url() -> None:
    with pytest.raises(ConfigError, match="database_url"):
        _validate({"mode": "embedded"})
    secret_url = "mysql://user:hunter2@db/hatchet"
    with pytest.raises(ConfigError) as info:
        _validate({"mode": "embedded", "database_url": secret_url})
    assert "hunter2" not in str(info.value)
    cfg = _validate({"mode": "embedded", "database_url": "postgresql://u:p@127.0.0.1:5432/hatchet"})
    assert cfg.api_token is None
    assert "p@127" not in repr(cfg)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("slots", 0),
        ("host_port", "no-port"),
        ("server_url", "ftp://x"),
        ("namespace", "bad name!"),
        ("tls_strategy", "ssl"),
        ("mode", "cloud"),
        ("connect_timeout_seconds", 0),
        ("unknown_setting", 1),
    ],
)
def test_bad_values_name_the_key(key: str, value: object) -> None:
    section = {"mode": "lite", "api_token": TOKEN, "host_port": "localhost:7077", key: value}
    with pytest.raises(ConfigError) as info:
        _validate(section)
    assert f"scheduler.hatchet.{key}" in str(info.value)
    assert TOKEN not in str(info.value)


def test_environment_fills_unset_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", TOKEN)
    monkeypatch.setenv("HATCHET_CLIENT_HOST_PORT", "engine:7077")
    monkeypatch.setenv("HATCHET_CLIENT_SERVER_URL", "http://engine:8888")
    monkeypatch.setenv("HATCHET_CLIENT_NAMESPACE", "Staging")
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    cfg = _validate({"mode": "lite"})
    assert cfg.api_token is not None and cfg.api_token.get_secret_value() == TOKEN
    assert cfg.host_port == "engine:7077"
    assert cfg.server_url == "http://engine:8888"
    assert cfg.namespace == "staging"
    assert cfg.effective_tls_strategy == "none"


def test_yaml_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_HOST_PORT", "env:7077")
    monkeypatch.setenv("HATCHET_CLIENT_NAMESPACE", "fromenv")
    cfg = _validate({"mode": "lite", "api_token": TOKEN, "host_port": "yaml:7077", "namespace": "fromyaml"})
    assert cfg.host_port == "yaml:7077"
    assert cfg.namespace == "fromyaml"


def test_token_never_shows_in_repr_str_dump_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    cfg = _validate({"mode": "lite", "api_token": TOKEN, "host_port": "localhost:7077"})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config: %s %r", cfg, cfg)
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), str(cfg.model_dump()), caplog.text):
        assert TOKEN not in text
    assert "**" in repr(cfg)


def test_worker_name_is_generated_when_unset() -> None:
    cfg = _validate({"mode": "lite", "api_token": TOKEN, "host_port": "localhost:7077"})
    assert cfg.effective_worker_name.startswith("owlclaw-")
    named = _validate({"mode": "lite", "api_token": TOKEN, "host_port": "h:1", "worker_name": "w1"})
    assert named.effective_worker_name == "w1"


def test_the_plugin_registers_hatchet_without_importing_the_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from owlclaw.scheduler.registry import available_backends; "
        "spec = available_backends()['hatchet']; "
        "assert 'hatchet_sdk' not in sys.modules, 'plugin imported the SDK'; "
        "print(spec.scheduler, spec.config, spec.extra)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "owlclaw.backends.hatchet.backend:HatchetScheduler",
        "owlclaw.backends.hatchet.config:HatchetConfig",
        "hatchet",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [("owlclaw-cancelled", "reserved"), ("owlclaw_report", "drop the prefix, e.g. 'report'")],
)
def test_task_names_the_engine_would_confuse_are_refused(name: str, message: str) -> None:
    from owlclaw.backends.hatchet.backend import HatchetScheduler
    from owlclaw.scheduler.errors import TaskDefinitionError

    scheduler = HatchetScheduler(_validate({"mode": "lite", "api_token": TOKEN, "host_port": "h:1"}))
    with pytest.raises(TaskDefinitionError, match=message):
        scheduler.task(name=name)(lambda payload, ctx: None)
    assert name not in scheduler.tasks


STATE_URL = "postgresql://owlclaw:state-pw-9f8e7d6c@db.internal:5432/owlclaw"


def test_the_state_database_url_is_a_secret_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lite = {"mode": "lite", "api_token": TOKEN, "host_port": "h:7077"}
    assert _validate(lite).state_database_url is None  # unset: schedules are not supported
    monkeypatch.setenv("OWLCLAW_STATE_DATABASE_URL", STATE_URL)
    cfg = _validate(lite)
    assert cfg.state_database_url is not None and cfg.state_database_url.get_secret_value() == STATE_URL
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config %s %r %s", cfg, cfg, cfg.model_dump())
    shown = f"{cfg}{cfg!r}{cfg.model_dump()}{cfg.model_dump_json()}{caplog.text}"
    assert "state-pw-9f8e7d6c" not in shown and "state_database_url='**********'" in repr(cfg)


def test_a_state_database_url_that_is_not_postgresql_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError) as info:
        _validate({"mode": "lite", "api_token": TOKEN, "host_port": "h:7077",
                   "state_database_url": "mysql://owlclaw:state-pw-9f8e7d6c@db/owlclaw"})  # fmt: skip
    assert "state_database_url" in str(info.value) and "OWLCLAW_STATE_DATABASE_URL" in str(info.value)
    assert "state-pw-9f8e7d6c" not in str(info.value)
