from collections.abc import Callable, Iterator

import pytest

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler import Scheduler, available_backends, create_scheduler
from owlclaw.scheduler.errors import BackendNotFoundError
from owlclaw.scheduler.hookspecs import BackendSpec, hookimpl
from owlclaw.scheduler.registry import load_backend, plugin_manager


class BrokenPlugin:
    @hookimpl
    def owlclaw_scheduler_register_backends(self, register: Callable[[BackendSpec], None]) -> None:
        register(
            BackendSpec(
                name="broken",
                scheduler="owlclaw_no_such_module.backend:X",
                config="owlclaw_no_such_module.config:Y",
                extra="broken",
            )
        )


@pytest.fixture
def broken_plugin() -> Iterator[None]:
    plugin = BrokenPlugin()
    plugin_manager().register(plugin)
    yield
    plugin_manager().unregister(plugin)


def test_memory_is_registered_through_the_entry_point_group() -> None:
    backends = available_backends()
    assert backends["memory"].scheduler == "owlclaw.backends.memory.backend:MemoryScheduler"
    with pytest.raises(TypeError):
        backends["x"] = backends["memory"]  # type: ignore[index]


def test_default_scheduler_is_memory_and_satisfies_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    scheduler = create_scheduler()
    assert isinstance(scheduler, MemoryScheduler)
    assert isinstance(scheduler, Scheduler)


def test_unknown_backend_lists_what_was_found() -> None:
    with pytest.raises(BackendNotFoundError) as err:
        load_backend("nosuch")
    assert "'nosuch'" in str(err.value) and "memory" in str(err.value)
    assert isinstance(err.value, LookupError)


def test_missing_extra_gives_the_pip_command(broken_plugin: None) -> None:
    assert "broken" in available_backends()
    with pytest.raises(BackendNotFoundError, match=r"pip install 'owlclaw-scheduler\[broken\]'"):
        load_backend("broken")


def test_env_selects_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "nosuch")
    with pytest.raises(BackendNotFoundError):
        create_scheduler()


def test_a_plugin_that_fails_to_import_breaks_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from owlclaw.scheduler import registry

    group = "owlclaw.scheduler.backends"
    fake = [
        EntryPoint("memory", "owlclaw.backends.memory.plugin", group),
        EntryPoint("ghost", "owlclaw_ghost_plugin_missing", group),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: fake)
    monkeypatch.setattr(registry, "_pm", None)
    monkeypatch.setattr(registry, "_broken", {})
    assert "memory" in available_backends()
    with pytest.raises(BackendNotFoundError, match=r"failed to load .*owlclaw_ghost_plugin_missing"):
        load_backend("ghost")
