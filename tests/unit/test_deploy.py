"""The files in deploy/: no Docker engine runs here, so their shape is checked.

The compose files must parse, give every long-running service an image, a
health check and a restart policy, pin Hatchet to the engine version we test,
keep secrets out of the file, and agree with init-db.sql (databases, roles,
passwords) and with what HatchetConfig reads (client variables, the example
owlclaw.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from owlclaw.backends.hatchet.config import ENV_FALLBACKS, HatchetConfig
from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.scheduler.config import BACKEND_ENV, CONFIG_ENV, SchedulerConfig, validate_section

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LITE = DEPLOY / "compose.lite.yml"
PRODUCTION = DEPLOY / "compose.production.yml"
COMPOSE_FILES = [LITE, PRODUCTION]
INIT_DB = DEPLOY / "init-db.sql"
ENV_EXAMPLE = DEPLOY / ".env.example"
EXAMPLE_YAML = DEPLOY / "owlclaw.example.yaml"

# Services that run once and exit (migrations, key/config generation): they
# restart "no", have no health check, and others wait for them to complete.
ONE_SHOT = {"hatchet-migrate", "hatchet-setup"}
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
HATCHET_IMAGE = "ghcr.io/hatchet-dev/hatchet/"
# OWLCLAW_* variables a container may set: read by the package or the CLI, or
# handed to the app for its own database.
OWLCLAW_ENV = {CONFIG_ENV, BACKEND_ENV, "OWLCLAW_APP", "OWLCLAW_DATABASE_URL"}
SECRET_NAME = re.compile(r"PASSWORD|PASS$|TOKEN|SECRET|_KEY$")
# ${VAR}, ${VAR:?message} or ${VAR:-} (empty default): never a literal secret
SECRET_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:\?[^}]*|:-)?\}$")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+]*://[^:/@]+:(?P<password>.*)@[^@]+$")
COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
DB_URL = re.compile(r"^postgres(?:ql)?://(?P<user>[^:/@]+):[^@]*@(?P<host>[^:/]+):\d+/(?P<db>[A-Za-z0-9_]+)")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name}: top level must be a mapping"
    return document


def _services(path: Path) -> dict[str, dict[str, Any]]:
    services = _load(path).get("services")
    assert isinstance(services, dict) and services, f"{path.name}: no services"
    return services


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a list or a mapping)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def _all_env(path: Path) -> Iterator[tuple[str, str, str]]:
    for name, service in _services(path).items():
        for key, value in _env(service).items():
            yield name, key, value


def _values(node: Any) -> str:
    """Every string in a parsed document (keys and values, no comments), joined."""
    if isinstance(node, dict):
        return "\n".join(f"{k}\n{_values(v)}" for k, v in node.items())
    if isinstance(node, list):
        return "\n".join(_values(v) for v in node)
    return str(node)


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, from ``env``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if value:
            return value
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"{name} is needed but not set: {arg}")

    return COMPOSE_VAR.sub(replace, text)


def _init_db() -> tuple[set[str], dict[str, str], set[str]]:
    """(roles, database -> owner, environment variables read) from init-db.sql."""
    sql = INIT_DB.read_text(encoding="utf-8")
    roles = set(re.findall(r"ALTER ROLE (\w+) WITH LOGIN", sql))
    owners = dict(re.findall(r"ALTER DATABASE (\w+) OWNER TO (\w+);", sql))
    created = re.search(r"CREATE DATABASE.*?ARRAY\[([^\]]*)\]", sql, re.S)
    assert created is not None, "init-db.sql: no CREATE DATABASE statement found"
    assert set(re.findall(r"'(\w+)'", created.group(1))) == set(owners)
    env = set(re.findall(r"^\\getenv \w+ (\w+)$", sql, re.M))
    return roles, owners, env


# --------------------------------------------------------------------------
# compose files: structure


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_service_has_an_image_a_health_check_and_a_restart_policy(path: Path) -> None:
    services = _services(path)
    for name, service in services.items():
        assert service.get("image"), f"{path.name}: {name} has no image"
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{path.name}: one-shot {name} must not restart"
            assert "healthcheck" not in service, f"{path.name}: one-shot {name} exits; no health check"
            continue
        assert service.get("restart") in RESTART_POLICIES, f"{path.name}: {name} has no restart policy"
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{path.name}: {name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{path.name}: {name}: health check form"
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{path.name}: {name}: health check needs {key}"


def test_one_shot_services_are_awaited_to_completion() -> None:
    services = _services(PRODUCTION)
    assert ONE_SHOT <= set(services)
    awaited = {
        dep
        for service in services.values()
        for dep, cond in (service.get("depends_on") or {}).items()
        if cond.get("condition") == "service_completed_successfully"
    }
    assert awaited == ONE_SHOT


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_dependencies_name_real_services_and_wait_for_health(path: Path) -> None:
    services = _services(path)
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{path.name}: {name} depends on unknown service {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond.get("condition") == expected, f"{path.name}: {name} -> {dep}"
            if services[dep].get("profiles") and not service.get("profiles"):
                assert cond.get("required") is False, (
                    f"{path.name}: {name} must not require {dep}, which only runs with its profile"
                )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_named_volumes_are_declared_and_used(path: Path) -> None:
    document = _load(path)
    declared = set(document.get("volumes") or {})
    used = set()
    for service in document["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared, f"{path.name}: used {sorted(used)}, declared {sorted(declared)}"
    postgres_mounts = [v.split(":")[1] for v in document["services"]["postgres"]["volumes"]]
    assert "/var/lib/postgresql/data" in postgres_mounts, f"{path.name}: postgres data is not on a volume"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_hatchet_images_are_pinned_to_the_engine_version(path: Path) -> None:
    images = [s["image"] for s in _services(path).values() if s["image"].startswith(HATCHET_IMAGE)]
    assert images, f"{path.name}: no Hatchet image"
    for image in images:
        assert image.rsplit(":", 1)[1] == ENGINE_VERSION, f"{path.name}: {image} is not {ENGINE_VERSION}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_postgres_is_15_or_newer_for_init_db(path: Path) -> None:
    # init-db.sql reads its passwords with psql's \getenv (psql 15+)
    tag = _services(path)["postgres"]["image"].split(":", 1)[1]
    assert int(re.match(r"\d+", tag).group(0)) >= 15  # type: ignore[union-attr]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_ports_are_published_on_loopback_by_default(path: Path) -> None:
    for name, service in _services(path).items():
        for port in service.get("ports") or []:
            host = _interpolate(str(port), {}).rsplit(":", 2)[0]
            assert host == "127.0.0.1", f"{path.name}: {name} publishes {port} beyond loopback"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_the_published_grpc_port_is_the_one_the_engine_listens_on(path: Path) -> None:
    services = _services(path)
    engine = services["hatchet-lite" if path is LITE else "hatchet-engine"]
    env = _env(engine)
    published = {str(p).rsplit(":", 2)[-1] for p in engine["ports"]}
    assert env["SERVER_GRPC_PORT"] in published
    broadcast_port = _interpolate(env["SERVER_GRPC_BROADCAST_ADDRESS"], {}).rsplit(":", 1)[1]
    host_ports = {str(p).rsplit(":", 2)[-2] for p in engine["ports"]}
    assert broadcast_port in host_ports, "workers are told a port that is not published"


class _OverrideLoader(yaml.SafeLoader):
    """Reads compose's ``!reset`` tag (a value the override clears) as None."""


_OverrideLoader.add_constructor("!reset", lambda loader, node: None)
HOSTNET = {path: path.with_name(path.name.replace(".yml", ".hostnet.yml")) for path in COMPOSE_FILES}
PORT_VAR = re.compile(r"\$\{(OWLCLAW_[A-Z_]+_PORT):-(\d+)\}")


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_the_hostnet_override_puts_every_service_on_the_host_network(path: Path) -> None:
    text = HOSTNET[path].read_text(encoding="utf-8")
    override = yaml.load(text, Loader=_OverrideLoader)["services"]
    assert set(override) == set(_services(path)), f"{HOSTNET[path].name}: not every service of {path.name}"
    off_host = [name for name, service in override.items() if service.get("network_mode") != "host"]
    assert not off_host, f"{HOSTNET[path].name}: {off_host} would need a bridge network"
    # two processes on the host's network cannot share a port: one default per variable, all distinct
    defaults: dict[str, set[str]] = {}
    for name, default in PORT_VAR.findall(text):
        defaults.setdefault(name, set()).add(default)
    assert all(len(d) == 1 for d in defaults.values()), f"a port variable with two defaults: {defaults}"
    flat = [d for ds in defaults.values() for d in ds]
    assert len(flat) == len(set(flat)), f"{HOSTNET[path].name}: two port variables default alike: {defaults}"


def test_the_production_engine_and_api_get_their_own_health_check_ports() -> None:
    override = yaml.load(HOSTNET[PRODUCTION].read_text(encoding="utf-8"), Loader=_OverrideLoader)
    ports = {
        name: _env(override["services"][name])["SERVER_HEALTHCHECK_PORT"]
        for name in ("hatchet-engine", "hatchet-api")
    }
    assert len(set(ports.values())) == 2, ports


# --------------------------------------------------------------------------
# secrets


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_no_secret_is_written_inline(path: Path) -> None:
    for name, key, value in _all_env(path):
        if SECRET_NAME.search(key):
            assert SECRET_REF.match(value), f"{path.name}: {name}.{key} must be a ${{VAR}} reference"
        url = URL_PASSWORD.match(value)
        if url is not None:
            assert SECRET_REF.match(url.group("password")), (
                f"{path.name}: {name}.{key} has a password in its URL; use ${{VAR}}"
            )


def test_the_env_example_lists_every_variable_and_holds_no_secret() -> None:
    example: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    referenced = {m.group(1) for path in COMPOSE_FILES for m in COMPOSE_VAR.finditer(_values(_load(path)))}
    assert referenced - set(example) == set(), "compose uses variables .env.example does not list"
    assert set(example) - referenced == set(), ".env.example lists variables no compose file uses"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value in ("", "change-me"), f".env.example: {key} must be a placeholder"
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


# --------------------------------------------------------------------------
# databases and roles agree with init-db.sql


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_database_urls_use_the_roles_and_databases_init_db_creates(path: Path) -> None:
    roles, owners, _ = _init_db()
    urls = [(name, key, v) for name, key, v in _all_env(path) if v.startswith(("postgres:", "postgresql:"))]
    assert urls, f"{path.name}: no database URL"
    for name, key, url in urls:
        match = DB_URL.match(url)
        assert match is not None, f"{path.name}: {name}.{key} is not a postgresql:// URL"
        assert match["host"] == "postgres", f"{path.name}: {name}.{key} must reach the postgres service"
        assert match["user"] in roles, f"{path.name}: {name}.{key}: role {match['user']} is not created"
        assert owners.get(match["db"]) == match["user"], (
            f"{path.name}: {name}.{key}: database {match['db']} is not owned by {match['user']}"
        )
        password = URL_PASSWORD.match(url)
        assert password is not None
        expected = f"{match['user'].upper()}_DB_PASSWORD"
        assert COMPOSE_VAR.match(password["password"])[1] == expected  # type: ignore[index]
    hatchet_urls = [u for n, _, u in urls if n.startswith("hatchet")]
    assert hatchet_urls and all(DB_URL.match(u)["db"] == "hatchet" for u in hatchet_urls)  # type: ignore[index]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_postgres_runs_init_db_with_the_passwords_it_reads(path: Path) -> None:
    roles, owners, needed = _init_db()
    assert roles == set(owners.values()) == {"hatchet", "owlclaw"}
    assert needed == {f"{role.upper()}_DB_PASSWORD" for role in roles}
    postgres = _services(path)["postgres"]
    env = _env(postgres)
    for var in needed:
        assert var in env and COMPOSE_VAR.match(env[var])[1] == var, f"{path.name}: postgres lacks {var}"  # type: ignore[index]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in postgres["volumes"]}
    assert mounts.get("./init-db.sql", "").startswith("/docker-entrypoint-initdb.d/")
    assert (path.parent / "init-db.sql").is_file()


def test_only_postgres_sees_the_other_roles_passwords() -> None:
    for name, service in _services(PRODUCTION).items():
        text = yaml.safe_dump(service.get("environment") or {})
        if name == "postgres":
            continue
        if name.startswith("hatchet"):
            assert "OWLCLAW_DB_PASSWORD" not in text, f"{name} can read the owlclaw password"
            assert "POSTGRES_PASSWORD" not in text, f"{name} can read the superuser password"
        if name == "worker":
            assert "HATCHET_DB_PASSWORD" not in text and "POSTGRES_PASSWORD" not in text


# --------------------------------------------------------------------------
# client settings agree with HatchetConfig


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_client_variables_are_ones_the_scheduler_reads(path: Path) -> None:
    for name, key, _ in _all_env(path):
        if key.startswith("HATCHET_CLIENT_"):
            assert key in ENV_FALLBACKS.values(), f"{path.name}: {name}.{key} is not read by HatchetConfig"


def test_the_worker_sets_only_variables_something_reads() -> None:
    workers = {
        name: service
        for name, service in _services(PRODUCTION).items()
        if (service.get("command") or [""])[0] == "owlclaw-scheduler"
    }
    assert set(workers) == {"worker"}
    example = EXAMPLE_YAML.read_text(encoding="utf-8")
    for key in _env(workers["worker"]):
        if key.startswith("HATCHET_CLIENT_") or key in ENV_FALLBACKS.values():
            continue  # read by HatchetConfig (HATCHET_CLIENT_* checked against ENV_FALLBACKS above)
        assert key in OWLCLAW_ENV or f"${{{key}" in example, f"worker sets {key}, which nothing reads"


def test_the_worker_service_config_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services(PRODUCTION)
    worker = services["worker"]
    for var in (*ENV_FALLBACKS.values(), "OWLCLAW_HATCHET_MODE", BACKEND_ENV, CONFIG_ENV):
        monkeypatch.delenv(var, raising=False)
    compose_env = {"HATCHET_CLIENT_TOKEN": "eyJ.test.token", "OWLCLAW_DB_PASSWORD": "x" * 16}
    env = {k: _interpolate(v, compose_env) for k, v in _env(worker).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    config_file = (DEPLOY / mounts[env[CONFIG_ENV]]).resolve()
    assert config_file == EXAMPLE_YAML
    monkeypatch.setenv(CONFIG_ENV, str(config_file))

    config = SchedulerConfig.load()
    assert config.backend == "hatchet"
    hatchet = validate_section(HatchetConfig, config, "hatchet")
    assert isinstance(hatchet, HatchetConfig)
    assert hatchet.mode == "lite" and hatchet.effective_tls_strategy == "none"
    assert hatchet.api_token is not None and hatchet.api_token.get_secret_value() == "eyJ.test.token"
    engine_host, _, engine_port = (hatchet.host_port or "").rpartition(":")
    assert engine_host in services
    assert engine_port == _env(services[engine_host])["SERVER_GRPC_PORT"]
    assert hatchet.server_url is not None
    api_host = hatchet.server_url.split("//", 1)[1].split(":", 1)[0]
    assert api_host in services
    assert worker["command"][:2] == ["owlclaw-scheduler", "worker"]
    # schedules keep their state in the app's database, as the owlclaw role of init-db.sql
    assert hatchet.state_database_url is not None
    state = hatchet.state_database_url.get_secret_value()
    assert state == f"postgresql://owlclaw:{'x' * 16}@postgres:5432/owlclaw"
    assert "postgres" in services


# --------------------------------------------------------------------------
# owlclaw.example.yaml


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*ENV_FALLBACKS.values(), "OWLCLAW_HATCHET_MODE", BACKEND_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", "eyJ.example.token")
    monkeypatch.setenv("HATCHET_CLIENT_HOST_PORT", "hatchet.example.com:443")


def test_the_example_config_loads_and_both_backends_validate(example_env: None) -> None:
    config = SchedulerConfig.from_yaml(EXAMPLE_YAML)
    assert config.backend == "memory"
    memory = validate_section(MemoryConfig, config, "memory")
    assert memory == MemoryConfig()
    hatchet = validate_section(HatchetConfig, config, "hatchet")
    assert isinstance(hatchet, HatchetConfig)
    assert hatchet.mode == "production" and hatchet.effective_tls_strategy == "tls"
    assert hatchet.host_port == "hatchet.example.com:443"
    # every value the file writes is the model's default
    defaults = HatchetConfig.model_validate(
        {"api_token": "eyJ.example.token", "host_port": "hatchet.example.com:443"}
    )
    assert hatchet.model_dump() == defaults.model_dump()


def test_the_example_config_follows_the_environment(
    example_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "hatchet")
    monkeypatch.setenv("OWLCLAW_HATCHET_MODE", "lite")
    monkeypatch.setenv("HATCHET_CLIENT_NAMESPACE", "Trading")
    monkeypatch.setenv("HATCHET_CLIENT_SERVER_URL", "http://localhost:8080/")
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    config = SchedulerConfig.from_yaml(EXAMPLE_YAML)
    assert config.backend == "hatchet"
    hatchet = validate_section(HatchetConfig, config, "hatchet")
    assert isinstance(hatchet, HatchetConfig)
    assert (hatchet.mode, hatchet.namespace, hatchet.server_url) == (
        "lite",
        "trading",
        "http://localhost:8080",
    )
    assert hatchet.effective_tls_strategy == "none"


@pytest.mark.parametrize(
    ("section", "model"),
    [(None, SchedulerConfig), ("memory", MemoryConfig), ("hatchet", HatchetConfig)],
)
def test_the_example_config_names_every_setting(section: str | None, model: type[Any]) -> None:
    document = _load(EXAMPLE_YAML)["scheduler"]
    keys = (
        {k for k in document if not isinstance(document[k], dict)}
        if section is None
        else set(document[section])
    )
    assert keys == set(model.model_fields), f"owlclaw.example.yaml: {section or 'scheduler'} is out of date"


def test_the_deployment_guide_names_the_pinned_versions() -> None:
    guide = (DEPLOY.parent / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert set(re.findall(r"\bv\d+\.\d+\.\d+\b", guide)) == {ENGINE_VERSION}
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text(encoding="utf-8")
    sdk = re.search(r'"hatchet-sdk==([^"]+)"', pyproject)
    assert sdk is not None
    assert set(re.findall(r"hatchet-sdk[= ]=?(\d+\.\d+\.\d+)", guide)) == {sdk.group(1)}


def test_the_example_config_names_each_override_next_to_its_setting() -> None:
    lines = EXAMPLE_YAML.read_text(encoding="utf-8").splitlines()

    def comment_above(key: str) -> str:
        index = next(i for i, line in enumerate(lines) if re.match(rf"^\s+{key}:", line))
        block = []
        for line in reversed(lines[:index]):
            if not line.lstrip().startswith("#"):
                break
            block.append(line)
        return "\n".join(block)

    for field, env in ENV_FALLBACKS.items():
        assert f"Env: {env}" in comment_above(field), f"owlclaw.example.yaml: {field} must name {env}"
    assert f"Env: {BACKEND_ENV}" in comment_above("backend")
    assert CONFIG_ENV in EXAMPLE_YAML.read_text(encoding="utf-8")
    assert ENGINE_VERSION in comment_above("binary_path")
