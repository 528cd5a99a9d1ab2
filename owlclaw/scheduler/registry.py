"""Backend discovery (pluggy, entry points) and ``create_scheduler``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, cast

import pluggy

from owlclaw.scheduler import hookspecs
from owlclaw.scheduler.config import SchedulerConfig, check_sections, validate_section
from owlclaw.scheduler.errors import BackendNotFoundError, ConfigError
from owlclaw.scheduler.hookspecs import BackendSpec, CliCommand, DemoEnvironment
from owlclaw.scheduler.protocol import Scheduler

__all__ = [
    "available_backends",
    "cli_commands",
    "create_scheduler",
    "demo_environment",
    "load_backend",
    "plugin_manager",
]

_pm: pluggy.PluginManager | None = None
_broken: dict[str, str] = {}  # entry-point name -> why its plugin module failed to import
DISTRIBUTION = "owlclaw-scheduler"
#: The backends shipped in this distribution, by entry-point name -> plugin module.
#: Registered by import when their entry points are absent (a source checkout
#: that was never pip-installed), so they are named here as strings: this
#: package imports no backend statically.
BUILTIN_PLUGINS: Mapping[str, str] = MappingProxyType(
    {"memory": "owlclaw.backends.memory.plugin", "hatchet": "owlclaw.backends.hatchet.plugin"}
)


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with installed plugins loaded.

    A plugin whose module fails to import is remembered, not fatal: the
    other backends still work and choosing the broken one says why.
    """
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # noqa: BLE001 - reported when that backend is chosen
                _broken[ep.name] = f"{type(exc).__name__}: {exc}"
        for name, module_name in BUILTIN_PLUGINS.items():
            if pm.get_plugin(name) is not None or name in _broken:
                continue  # its entry point registered it (or failed, and says why)
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - reported when that backend is chosen
                _broken[name] = f"{type(exc).__name__}: {exc}"
                continue
            if not pm.is_registered(module):  # e.g. an entry point of another name loaded it
                pm.register(module, name=name)
        _pm = pm
    return _pm


def available_backends() -> Mapping[str, BackendSpec]:
    """Every backend the installed plugins register, by name (read-only)."""
    found: dict[str, BackendSpec] = {}

    def register(spec: BackendSpec) -> None:
        if spec.name in found and found[spec.name] != spec:
            raise BackendNotFoundError(
                f"two plugins register a backend named {spec.name!r}: "
                f"{found[spec.name].scheduler} and {spec.scheduler}; uninstall one"
            )
        found[spec.name] = spec

    plugin_manager().hook.owlclaw_scheduler_register_backends(register=register)
    return MappingProxyType(found)


def cli_commands() -> dict[str, CliCommand]:
    """The commands plugins add to ``owlclaw-scheduler``, by name.

    :raises BackendNotFoundError: two plugins add a command of the same name.
    """
    found: dict[str, CliCommand] = {}

    def register(command: CliCommand) -> None:
        if command.name in found:
            raise BackendNotFoundError(
                f"two plugins add an owlclaw-scheduler command named {command.name!r}; uninstall one"
            )
        found[command.name] = command

    plugin_manager().hook.owlclaw_scheduler_cli_commands(register=register)
    return found


def demo_environment(name: str) -> DemoEnvironment | None:
    """What backend ``name`` declares to prepare the demo (``BackendSpec.demo``), if anything.

    :raises BackendNotFoundError: it names a function that cannot be imported.
    """
    spec = available_backends().get(name)
    if spec is None or spec.demo is None:
        return None
    return cast(DemoEnvironment, _import(spec.demo, spec))


def _import(ref: str, spec: BackendSpec) -> Any:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = (
            f"pip install '{DISTRIBUTION}[{spec.extra}]'"
            if spec.extra
            else "reinstall the package that provides it"
        )
        raise BackendNotFoundError(
            f"backend {spec.name!r} is registered but cannot be imported ({exc}); "
            f"install its dependencies: {hint}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BackendNotFoundError(
            f"backend {spec.name!r} names {ref!r}, but {module_name} has no {attr!r}"
        ) from None


def load_backend(name: str) -> tuple[type[Any], type[Any]]:
    """Import backend ``name``; returns (scheduler class, config model).

    :raises BackendNotFoundError: not registered, or its extra is missing.
    """
    backends = available_backends()
    spec = backends.get(name)
    if spec is None and name in _broken:
        raise BackendNotFoundError(
            f"the plugin for backend {name!r} failed to load ({_broken[name]}); "
            f"reinstall it, e.g. pip install '{DISTRIBUTION}[{name}]'"
        )
    if spec is None:
        # the built-in backends are always registered (by entry point or by import), so an
        # unknown name is a typo or a third-party plugin that is not installed
        found = ", ".join(sorted(backends)) or "none (is owlclaw-scheduler installed?)"
        raise BackendNotFoundError(f"no scheduler backend named {name!r}; found: {found}")
    return _import(spec.scheduler, spec), _import(spec.config, spec)


def create_scheduler(
    config: SchedulerConfig | str | os.PathLike[str] | None = None,
) -> Scheduler:
    """Build the scheduler the configuration asks for.

    ``config`` may be a ``SchedulerConfig`` or the path of an owlclaw.yaml.
    With no argument: ``$OWLCLAW_CONFIG``, else ``./owlclaw.yaml``, else the
    memory backend. ``$OWLCLAW_SCHEDULER_BACKEND`` overrides the backend.

    :raises ConfigError: the configuration is invalid.
    :raises BackendNotFoundError: the backend is unknown or its extra missing.
    """
    if not isinstance(config, SchedulerConfig):
        config = SchedulerConfig.load(config)
    scheduler_cls, config_model = load_backend(config.backend)
    check_sections(config, available_backends())
    settings = validate_section(config_model, config, config.backend)
    factory = getattr(scheduler_cls, "from_config", None)
    if factory is None:
        raise ConfigError(f"backend {config.backend!r} class has no from_config(config)")
    return cast(Scheduler, factory(settings))
