"""Plugins contribute CLI commands and the demo's environment; the built-in
backends register by import when their entry points are absent."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from owlclaw.scheduler import available_backends, registry
from owlclaw.scheduler.cli import main
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.hookspecs import BackendSpec, CliCommand, DemoSetup, hookimpl
from owlclaw.scheduler.registry import cli_commands, demo_environment, plugin_manager

GROUP = "owlclaw.scheduler.backends"
ROOT = str(Path(__file__).resolve().parents[2])
entered: list[str] = []


@contextlib.contextmanager
def fake_demo(config: SchedulerConfig, *, verbose: bool) -> Iterator[DemoSetup]:
    """A third backend's demo environment: runs the demo on memory, 'worker' output captured."""
    entered.append(f"enter verbose={verbose}")
    with tempfile.TemporaryFile() as output:
        output.write(b"the fake worker's last words\n")
        yield DemoSetup(SchedulerConfig.from_mapping({"backend": "memory"}), output)
    entered.append("exit")


class ThirdPartyPlugin:
    @hookimpl
    def owlclaw_scheduler_register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(
            BackendSpec(
                name="thirdparty",
                scheduler="owlclaw.backends.memory.backend:MemoryScheduler",
                config="owlclaw.backends.memory.config:MemoryConfig",
                demo=f"{__name__}:fake_demo",
            )
        )

    @hookimpl
    def owlclaw_scheduler_cli_commands(self, register: Callable[[CliCommand], None]) -> None:
        def configure(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("--times", type=int, default=1)

        def run(args: argparse.Namespace) -> int:
            print("hello " * args.times + f"backend={args.backend}")
            return 7

        register(CliCommand("thirdparty-hello", "say hello", run=run, configure=configure))
        register(CliCommand("backends", "clashes with a built-in", run=lambda args: 99))


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OWLCLAW_CONFIG", "OWLCLAW_SCHEDULER_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    plugin = ThirdPartyPlugin()
    plugin_manager().register(plugin)
    entered.clear()
    yield
    plugin_manager().unregister(plugin)


def test_a_plugin_command_runs_from_the_cli(third_party: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["thirdparty-hello", "--times", "2", "--backend", "memory"]) == 7
    captured = capsys.readouterr()
    assert "hello hello backend=memory" in captured.out
    # a plugin cannot replace a built-in command
    assert "ignoring a plugin's command 'backends'" in captured.err
    assert main(["backends"]) == 0


def test_the_demo_enters_the_environment_its_backend_declares(
    third_party: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--backend", "thirdparty", "--timeout", "1"]) == 5
    assert entered == ["enter verbose=False", "exit"]
    captured = capsys.readouterr()
    assert "backend=memory" in captured.out  # the config the environment gave
    assert "the fake worker's last words" in captured.err  # shown because the tour was incomplete


def test_memory_declares_no_demo_environment() -> None:
    assert demo_environment("memory") is None
    assert demo_environment("nosuch") is None


def test_hatchet_contributes_its_demo_and_engine_command(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = demo_environment("hatchet")
    assert environment is not None and environment.__module__ == "owlclaw.backends.hatchet.cli"
    command = cli_commands()["hatchet-engine"]
    calls: list[list[str]] = []
    import owlclaw.backends.hatchet.local.__main__ as engine_main

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr(engine_main, "main", fake_main)
    parser = argparse.ArgumentParser()
    assert command.configure is not None
    command.configure(parser)
    assert command.run(parser.parse_args(["--grpc-port", "7077", "--workdir", "/tmp/e"])) == 0
    assert calls == [
        ["--startup-timeout", "120.0", "--log-level", "warn", "--grpc-port", "7077", "--workdir", "/tmp/e"]
    ]


def _fresh_registry(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.setattr(registry, "_pm", None)
    monkeypatch.setattr(registry, "_broken", {})


def test_builtins_register_by_import_without_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh_registry(monkeypatch, [])
    assert {"memory", "hatchet"} <= set(available_backends())
    assert "hatchet-engine" in cli_commands()


@pytest.mark.parametrize("ep_name", ["memory", "memory-under-another-name"])
def test_builtins_with_entry_points_register_once(monkeypatch: pytest.MonkeyPatch, ep_name: str) -> None:
    _fresh_registry(
        monkeypatch,
        [
            EntryPoint(ep_name, "owlclaw.backends.memory.plugin", GROUP),
            EntryPoint("hatchet", "owlclaw.backends.hatchet.plugin", GROUP),
        ],
    )
    pm = plugin_manager()
    modules = [p for p in pm.get_plugins() if getattr(p, "__name__", "").startswith("owlclaw.backends.")]
    assert sorted(m.__name__ for m in modules) == [
        "owlclaw.backends.hatchet.plugin",
        "owlclaw.backends.memory.plugin",
    ]
    assert pm.get_plugin(ep_name) is sys.modules["owlclaw.backends.memory.plugin"]
    assert available_backends()["memory"].name == "memory"


def test_a_builtin_that_fails_to_import_breaks_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from owlclaw.scheduler.errors import BackendNotFoundError

    _fresh_registry(monkeypatch, [])
    broken: Any = {"memory": "owlclaw.backends.memory.plugin", "hatchet": "owlclaw_no_such_plugin_module"}
    monkeypatch.setattr(registry, "BUILTIN_PLUGINS", broken)
    assert "memory" in available_backends()
    with pytest.raises(BackendNotFoundError, match=r"failed to load .*owlclaw_no_such_plugin_module"):
        registry.load_backend("hatchet")


def test_the_cli_parser_imports_no_backend_sdk() -> None:
    """Building the parser asks every plugin for its commands; none may import its SDK."""
    code = (
        "import sys\n"
        "from owlclaw.scheduler.cli import build_parser\n"
        "build_parser()\n"
        "assert 'hatchet_sdk' not in sys.modules\n"
        "assert 'owlclaw.backends.hatchet.local.engine' not in sys.modules\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT)
    )
