"""``SchedulerConfig``: which backend, and one section of settings per backend.

In ``owlclaw.yaml``::

    scheduler:
      backend: hatchet            # OWLCLAW_SCHEDULER_BACKEND overrides it
      memory:
        slots: 50
      hatchet:
        api_token: ${HATCHET_CLIENT_TOKEN}
        namespace: ${OWLCLAW_ENV:-dev}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from owlclaw.scheduler.errors import ConfigError

__all__ = ["SchedulerConfig", "substitute_env"]

CONFIG_ENV = "OWLCLAW_CONFIG"
BACKEND_ENV = "OWLCLAW_SCHEDULER_BACKEND"
DEFAULT_FILE = "owlclaw.yaml"
SECTION = "scheduler"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class SchedulerConfig(BaseModel):
    """The ``scheduler:`` section of owlclaw.yaml.

    ``backend`` names the plugin; any other key is a backend's section,
    validated by that backend's own model when the scheduler is created.
    """

    model_config = ConfigDict(extra="allow")

    backend: str = Field(
        default="memory",
        description="Name of the backend plugin to use; "
        "`owlclaw-scheduler backends` lists the installed ones.",
    )
    _source: str = PrivateAttr(default="<defaults>")

    @property
    def source(self) -> str:
        """Where this configuration came from, for error messages."""
        return self._source

    def section(self, name: str) -> dict[str, Any]:
        """The settings of backend ``name`` (empty if not given)."""
        value = (self.model_extra or {}).get(name) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{self._source}: {SECTION}.{name} must be a mapping of settings, got {type(value).__name__}"
            )
        return dict(value)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, source: str = "<dict>") -> SchedulerConfig:
        """Build from a ``scheduler:`` mapping; applies ``OWLCLAW_SCHEDULER_BACKEND``.

        :raises ConfigError: the mapping is not valid.
        """
        data = dict(data or {})
        if os.environ.get(BACKEND_ENV):
            data["backend"] = os.environ[BACKEND_ENV]
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source, SECTION)) from None
        if not config.backend or not isinstance(config.backend, str):
            raise ConfigError(f"{source}: {SECTION}.backend must name a backend, e.g. memory")
        config._source = source
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> SchedulerConfig:
        """Read the ``scheduler:`` key of an owlclaw.yaml, substituting
        ``${VAR}`` and ``${VAR:-default}`` from the environment.

        :raises ConfigError: unreadable file, bad YAML, unset variable, bad values.
        """
        section = read_yaml_section(path, SECTION, "backend: memory")
        substituted = substitute_env(section, str(path), SECTION)
        return cls.from_mapping(substituted, source=str(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> SchedulerConfig:
        """``path``, else ``$OWLCLAW_CONFIG``, else ``./owlclaw.yaml``, else defaults."""
        if path is None:
            path = os.environ.get(CONFIG_ENV) or None
            if path is None and Path(DEFAULT_FILE).is_file():
                path = DEFAULT_FILE
        if path is None:
            return cls.from_mapping({}, source="<defaults>")
        return cls.from_yaml(path)


def read_yaml_section(path: str | os.PathLike[str], key: str, example: str) -> Mapping[str, Any]:
    """The ``key:`` mapping of a YAML file, safely loaded (empty if absent).

    :raises ConfigError: unreadable file, bad YAML, or not mappings.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {p}: {exc.strerror or exc}; "
            f"check the path (set by {CONFIG_ENV} or passed in)"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{p}: the top level must be a mapping with a '{key}:' key")
    section = document.get(key) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{p}: '{key}:' must be a mapping, e.g.\n{key}:\n  {example}")
    return section


def substitute_env(value: Any, source: str, where: str, *, unset: Literal["error", "empty"] = "error") -> Any:
    """``value`` (a string, or mappings and lists of them) with ``${VAR}`` and
    ``${VAR:-default}`` replaced from the environment.

    ``${VAR:-default}`` gives ``default`` when VAR is unset or empty, as shells
    and Docker Compose do. ``${VAR}`` gives VAR's value, even an empty one;
    when VAR is unset, ``unset="error"`` raises and ``unset="empty"`` gives "".
    ``source`` and ``where`` (the dotted key) name the place in the error.

    :raises ConfigError: an unset ``${VAR}`` without default, with ``unset="error"``.
    """
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            current = os.environ.get(name)
            if default is not None:
                return current or default
            if current is not None:
                return current
            if unset == "empty":
                return ""
            raise ConfigError(
                f"{source}: {where} uses ${{{name}}} but {name} is not set; "
                f"export {name}=... or write ${{{name}:-default}}"
            )

        return _VAR.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: substitute_env(v, source, f"{where}.{k}", unset=unset) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, source, f"{where}[{i}]", unset=unset) for i, v in enumerate(value)]
    return value


def _describe(exc: ValidationError, source: str, prefix: str) -> str:
    """One line per problem: file, dotted key, what is wrong."""
    lines = []
    for err in exc.errors():
        key = ".".join([prefix, *(str(p) for p in err["loc"])])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting; remove it or check its spelling"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def check_sections(config: SchedulerConfig, known: Iterable[str]) -> None:
    """Refuse a section that names no known backend (a misspelled ``memroy:``
    would otherwise be ignored and its settings silently lost).

    :raises ConfigError: naming the unknown section and the known ones.
    """
    names = sorted(set(known))
    for key in config.model_extra or {}:
        if key not in names:
            raise ConfigError(
                f"{config.source}: unknown section {SECTION}.{key}; the known sections are "
                f"'backend' and one per backend: {', '.join(names) or 'none installed'}. "
                "Check its spelling"
            )


def validate_section(model: type[BaseModel], config: SchedulerConfig, name: str) -> BaseModel:
    """Validate backend ``name``'s section with its model.

    :raises ConfigError: naming the file and the offending key.
    """
    try:
        return model.model_validate(config.section(name))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config.source, f"{SECTION}.{name}")) from None
