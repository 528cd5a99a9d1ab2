"""``HatchetConfig``: the ``hatchet:`` section of owlclaw.yaml, as OwlClaw writes it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from owlclaw.scheduler.config import BACKEND_ENV, read_yaml_section, substitute_env
from owlclaw.scheduler.errors import ConfigError
from owlclaw.scheduler.validators import check_host_port, check_server_url

__all__ = ["ENV_FALLBACKS", "HatchetConfig"]

SECTION = "hatchet"

#: field -> environment variable read when the field is unset or empty.
ENV_FALLBACKS: dict[str, str] = {
    "server_url": "HATCHET_SERVER_URL",
    "grpc_tls_strategy": "HATCHET_GRPC_TLS_STRATEGY",
    "grpc_host_port": "HATCHET_GRPC_HOST_PORT",
    "api_token": "HATCHET_API_TOKEN",
}
DEFAULT_GRPC_PORT = 7077

DEFAULT_SERVER_URL = "http://localhost:7077"  # OwlClaw's original client's default

_OPTIONAL = ("server_url", "api_token", "grpc_host_port", "grpc_tls_strategy", "worker_name")


class HatchetConfig(BaseModel):
    """How OwlClaw's ``HatchetClient`` reaches Hatchet, or runs on the memory backend.

    ``backend`` is ``hatchet`` (default) or ``memory``; ``OWLCLAW_SCHEDULER_BACKEND``
    overrides it, so a test run can switch an unchanged owlclaw.yaml to memory.

    The ``postgres_*`` fields describe the database *the Hatchet server* uses.
    The client never connects to PostgreSQL (it talks to the server over gRPC
    and HTTP); they are accepted so OwlClaw's owlclaw.yaml loads unchanged, and
    ``postgres_url()`` builds the DSN for deployment tooling (e.g. hatchet-lite's
    ``DATABASE_URL``).
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    backend: Literal["hatchet", "memory"] = "hatchet"
    server_url: str = Field(
        default=DEFAULT_SERVER_URL, description="REST API URL, http(s)://host[:port] (default: as OwlClaw's)."
    )
    api_token: SecretStr | None = Field(default=None, description="Hatchet API token; never logged.")
    grpc_host_port: str | None = Field(
        default=None, description="gRPC host:port (default: server_url's host, port 7077)."
    )
    grpc_tls_strategy: Literal["tls", "mtls", "none"] = Field(
        default="tls", description="tls, mtls or none (default: tls, as OwlClaw's original client)."
    )
    connect_timeout_seconds: float = Field(default=30.0, gt=0, description="As OwlClaw's original client.")
    namespace: str = "owlclaw"
    mode: Literal["production", "lite"] = "production"
    postgres_host: str = "localhost"
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_db: str = "hatchet"
    postgres_user: str = "hatchet"
    postgres_password: SecretStr = SecretStr("")
    max_concurrent_tasks: int = Field(default=10, ge=1, description="Runs one worker executes at once.")
    worker_name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fallbacks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in _OPTIONAL:
            if name in data and data[name] in ("", None):
                del data[name]  # ``${UNSET}`` in YAML means "not set": the fallback, then the default
        for name, env in ENV_FALLBACKS.items():
            if name not in data and os.environ.get(env, "").strip():
                data[name] = os.environ[env].strip()
        if isinstance(data.get("grpc_tls_strategy"), str):
            data["grpc_tls_strategy"] = data["grpc_tls_strategy"].strip().lower()
        if os.environ.get(BACKEND_ENV):
            data["backend"] = os.environ[BACKEND_ENV]
        return data

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, value: str) -> str:
        checked = check_server_url(value)
        assert checked is not None
        return checked

    @field_validator("grpc_host_port")
    @classmethod
    def _check_host_port(cls, value: str | None) -> str | None:
        return check_host_port(value, "grpc_host_port")

    @property
    def effective_grpc_host_port(self) -> str:
        """``grpc_host_port``, else ``server_url``'s host with its port (or 7077)."""
        if self.grpc_host_port is not None:
            return self.grpc_host_port
        parts = urlsplit(self.server_url)
        host = parts.hostname or "localhost"
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        return f"{host}:{parts.port or DEFAULT_GRPC_PORT}"

    def postgres_url(self) -> str:
        """``postgresql://user:password@host:port/db``: it holds the password, do not log it."""
        password = self.postgres_password.get_secret_value()
        auth = quote(self.postgres_user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> HatchetConfig:
        """Read the top-level ``hatchet:`` section of an owlclaw.yaml.

        ``${VAR}`` and ``${VAR:-default}`` come from the environment. Unlike the
        ``scheduler:`` section, an unset ``${VAR}`` reads as empty (then the
        field's environment fallback applies), as OwlClaw's own loader did: an
        owlclaw.yaml with ``api_token: ${HATCHET_API_TOKEN}`` still loads for the
        memory backend, and ``connect()`` names the missing token.

        :raises ConfigError: unreadable file, bad YAML or invalid values.
        """
        section = read_yaml_section(path, SECTION, "namespace: owlclaw")
        substituted = substitute_env(section, str(path), SECTION, unset="empty")
        return cls.from_mapping(substituted, source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<dict>") -> HatchetConfig:
        """Validate a ``hatchet:`` mapping.

        :raises ConfigError: one line per bad key, naming ``source``.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                key = ".".join([SECTION, *(str(p) for p in err["loc"])])
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown setting; remove it or check its spelling"
                lines.append(f"{source}: {key}: {msg}")
            raise ConfigError("\n".join(lines)) from None

    def __repr__(self) -> str:
        token = "'**********'" if self.api_token is not None else "None"
        return (
            f"HatchetConfig(backend={self.backend!r}, mode={self.mode!r}, server_url={self.server_url!r}, "
            f"grpc_host_port={self.effective_grpc_host_port!r}, namespace={self.namespace!r}, "
            f"api_token={token}, max_concurrent_tasks={self.max_concurrent_tasks})"
        )

    __str__ = __repr__
