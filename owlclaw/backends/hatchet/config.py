"""Settings of the Hatchet backend (``scheduler.hatchet`` in owlclaw.yaml).

Every value may come from the YAML section; the connection settings fall
back to the SDK's usual environment variables when the section leaves them
unset::

    scheduler:
      backend: hatchet
      hatchet:
        mode: production                  # or lite, embedded
        api_token: ${HATCHET_CLIENT_TOKEN}
        namespace: ${OWLCLAW_ENV:-dev}

``mode``:

* ``production``: a Hatchet server reached over TLS (``tls`` or ``mtls``);
  ``api_token`` is required. Plain-text gRPC (``tls_strategy: none``) is
  allowed to a loopback host only, unless ``allow_insecure_grpc: true``.
* ``lite``: a ``hatchet-lite`` server (e.g. in Docker); TLS optional.
* ``embedded``: this process starts the locally built hatchet-lite engine
  (``bash .ci/install-engine.sh``, see ``owlclaw.backends.hatchet.local.engine``)
  on ``database_url`` and connects to it with a token it mints itself. This is
  *not* Hatchet's ``hatchet-embedded`` sidecar module: the Go module proxy
  refuses that module (HTTP 403), so "embedded" means our own build of
  hatchet-lite, started and stopped with the scheduler.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from owlclaw.scheduler.validators import check_host_port, check_server_url

__all__ = ["ENV_FALLBACKS", "HatchetConfig"]

#: field -> environment variable read when the field is not set.
ENV_FALLBACKS: dict[str, str] = {
    "api_token": "HATCHET_CLIENT_TOKEN",
    "host_port": "HATCHET_CLIENT_HOST_PORT",
    "server_url": "HATCHET_CLIENT_SERVER_URL",
    "namespace": "HATCHET_CLIENT_NAMESPACE",
    "tls_strategy": "HATCHET_CLIENT_TLS_STRATEGY",
    "state_database_url": "OWLCLAW_STATE_DATABASE_URL",
}


class HatchetConfig(BaseModel):
    """How to reach (or start) a Hatchet engine and how this app's worker runs."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    mode: Literal["production", "lite", "embedded"] = Field(
        default="production",
        description="production (TLS, token), lite (hatchet-lite, TLS optional) or embedded "
        "(start the locally built hatchet-lite on database_url).",
    )
    server_url: str | None = Field(
        default=None,
        description="REST API base URL, e.g. https://hatchet.example.com "
        "(default: http(s)://<host of host_port>).",
    )
    host_port: str | None = Field(
        default=None,
        description="gRPC address host:port, e.g. hatchet:7070; required in production and lite modes.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="API token (a JWT); required in production and lite modes; never logged or shown.",
    )
    namespace: str = Field(
        default="owlclaw",
        description="Prefix of workflow names (<namespace>_<task>), so several apps or environments "
        "share one tenant; letters, digits and '-', lowercased. No '_': Hatchet joins namespace and "
        "task with '_', so 'prod' would otherwise see the tasks of 'prod_eu'.",
    )
    tls_strategy: Literal["tls", "mtls", "none"] | None = Field(
        default=None, description="tls, mtls or none (default: tls, or none for lite/embedded)."
    )
    allow_insecure_grpc: bool = Field(
        default=False,
        description="In production mode, allow tls_strategy none to a host that is not loopback "
        "(the token then crosses the network in clear text); leave false unless a trusted "
        "network or a TLS-terminating sidecar protects the link.",
    )
    worker_name: str | None = Field(
        default=None, description="Worker name (default: owlclaw-<pid>-<random>)."
    )
    slots: int = Field(
        default=200,
        ge=1,
        description="Runs one worker executes at once (and as many durable runs, on a worker of their "
        "own). The engine reuses a freed slot only after its next slot refresh (about 1 s), so a "
        "worker starts at most about this many runs a second: 200 keeps up with what one engine "
        "on a small machine can run.",
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL (postgres:// or postgresql://); required in embedded mode."
    )
    state_database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL of the application's database (the owlclaw database of "
        "deploy/init-db.sql, not the engine's) where schedules keep their state; without it "
        "add_schedule and the other schedule calls are not supported. Never logged or shown.",
    )
    binary_path: str | None = Field(
        default=None,
        description="Directory of the built engine binaries for embedded mode "
        "(default: ~/.cache/owlclaw-engine/<version>/bin, or under $OWLCLAW_ENGINE_CACHE).",
    )
    schedule_timeout_seconds: int = Field(
        default=86400,
        ge=1,
        description="How long a due run may wait for a free worker before the engine fails it "
        "(the SDK's default is 5 minutes); cover your longest worker outage.",
    )
    connect_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long connect() waits for the engine to answer."
    )
    shutdown_grace_seconds: float = Field(
        default=90.0,
        gt=0,
        le=86400,
        description="Seconds a worker given SIGTERM or SIGINT lets its runs in flight finish; then it "
        "exits with status 1 and the engine hands those runs to another worker. Keep it below "
        "your platform's kill timeout (compose stop_grace_period, Kubernetes "
        "terminationGracePeriodSeconds).",
    )

    schedule_sweep_slack_seconds: float = Field(
        default=90.0,
        ge=5,
        le=86400,
        description="With schedules: how overdue a schedule's next engine link must be before a "
        "worker's sweeper decides the engine lost it and catches the schedule up (every 15 s). "
        "Longer than the engine takes to hand runs out again after a restart (about 61 s), so "
        "the late link, not the sweeper, usually fires.",
    )

    hold_short_delays: bool = Field(
        default=True,
        description="A schedule due in under 6 s is queued at once and held by its worker until "
        "due (it reads SCHEDULED until then and holds a worker slot meanwhile): the engine's ticker "
        "fires one-off schedules up to 5 s late. false: every schedule is an engine schedule.",
    )
    batch_triggers: bool = Field(
        default=True,
        description="Gather concurrent run_task calls into the engine's bulk trigger requests "
        "(one in flight; the first call of an idle client goes out at once). false: one gRPC "
        "call per run, as the SDK does.",
    )
    trigger_queue_size: int = Field(
        default=10000,
        ge=1,
        le=1_000_000,
        description="Most run_task calls queued or in flight at once when batch_triggers is on; "
        "past it a caller waits for room (back-pressure).",
    )
    ship_owlclaw_logs: bool = Field(
        default=False,
        description="Also send owlclaw's own per-run log lines (owlclaw.* loggers) to the engine's "
        "run logs; your task's own log lines are sent either way. Off: they stay in the worker's "
        "local logs, saving the engine two RPCs and two rows per run.",
    )

    @model_validator(mode="before")
    @classmethod
    def _env_fallbacks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, env in ENV_FALLBACKS.items():
            if data.get(name) in (None, "") and os.environ.get(env):
                data[name] = os.environ[env]
        return data

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        text = value.strip()
        if "_" in text:
            raise ValueError(
                f"namespace {value!r} contains '_': Hatchet joins namespace and task name with '_', "
                f"so it could not be told apart from another namespace; use '-', e.g. "
                f"{text.replace('_', '-')!r}"
            )
        if not text or not all(c.isalnum() or c == "-" for c in text):
            raise ValueError(f"namespace {value!r} is invalid: use letters, digits and '-', e.g. owlclaw-dev")
        return text.lower()

    @field_validator("host_port")
    @classmethod
    def _check_host_port(cls, value: str | None) -> str | None:
        return check_host_port(value, "host_port")

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, value: str | None) -> str | None:
        return check_server_url(value)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql") or not parts.netloc:
            # never echo the URL: it may carry a password
            raise ValueError(
                "database_url must be a PostgreSQL URL like postgresql://user:password@host:5432/hatchet"
            )
        return value

    @field_validator("state_database_url")
    @classmethod
    def _check_state_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgres", "postgresql") or not parts.netloc:
            # never echo the URL: it carries a password
            raise ValueError(
                "state_database_url must be a PostgreSQL URL like "
                "postgresql://owlclaw:password@host:5432/owlclaw (or set OWLCLAW_STATE_DATABASE_URL)"
            )
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> HatchetConfig:
        if self.mode == "production":
            host = (self.host_port or "").rpartition(":")[0]
            plain = self.tls_strategy == "none" and self.host_port is not None
            if plain and not self.allow_insecure_grpc and not _is_loopback(host):
                raise ValueError(
                    f"mode 'production' refuses plain-text gRPC (tls_strategy none) to {host!r}, "
                    "which is not a loopback host: the token would cross the network unencrypted; "
                    "set tls_strategy to 'tls' or 'mtls', set allow_insecure_grpc: true if the "
                    "link is protected another way, or use mode 'lite' for a hatchet-lite server"
                )
            if self.api_token is None:
                raise ValueError(
                    "mode 'production' needs api_token: set scheduler.hatchet.api_token "
                    "or export HATCHET_CLIENT_TOKEN"
                )
            if self.host_port is None:
                raise ValueError(
                    "mode 'production' needs host_port (gRPC host:port): set "
                    "scheduler.hatchet.host_port or export HATCHET_CLIENT_HOST_PORT"
                )
        elif self.mode == "lite":
            if self.api_token is None:
                raise ValueError(
                    "mode 'lite' needs api_token (create one with `hatchet-admin token create`): "
                    "set scheduler.hatchet.api_token or export HATCHET_CLIENT_TOKEN"
                )
            if self.host_port is None:
                raise ValueError(
                    "mode 'lite' needs host_port (gRPC host:port, e.g. localhost:7077): set "
                    "scheduler.hatchet.host_port or export HATCHET_CLIENT_HOST_PORT"
                )
        elif self.mode == "embedded" and self.database_url is None:
            raise ValueError(
                "mode 'embedded' needs database_url (postgresql://...), the database the "
                "locally built hatchet-lite engine uses"
            )
        return self

    @property
    def effective_tls_strategy(self) -> str:
        if self.tls_strategy is not None:
            return self.tls_strategy
        return "tls" if self.mode == "production" else "none"

    @property
    def effective_worker_name(self) -> str:
        return self.worker_name or f"owlclaw-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __repr__(self) -> str:
        token = "'**********'" if self.api_token is not None else "None"
        state = ", state_database_url='**********'" if self.state_database_url is not None else ""
        return (
            f"HatchetConfig(mode={self.mode!r}, host_port={self.host_port!r}, "
            f"server_url={self.server_url!r}, namespace={self.namespace!r}, "
            f"tls_strategy={self.effective_tls_strategy!r}, api_token={token}, slots={self.slots}{state})"
        )

    __str__ = __repr__


def _is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (``127.0.0.0/8``, ``::1``); no DNS look-up."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
