"""docs/configuration.md is generated from the config models and must not go stale."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from owlclaw.backends.hatchet.config import ENV_FALLBACKS, HatchetConfig
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.configref import COMMAND, main, render
from owlclaw.scheduler.hookspecs import BackendSpec, hookimpl
from owlclaw.scheduler.registry import plugin_manager

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_page_matches_the_models() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is stale: run `{COMMAND}` from the repository root and commit the result"
    )


def _row(page: str, key: str) -> str:
    [row] = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
    return row


def test_every_field_has_a_row_with_its_description() -> None:
    page = render()
    models: list[tuple[str, type[BaseModel]]] = [
        ("scheduler", SchedulerConfig),
        ("scheduler.memory", MemoryConfig),
        ("scheduler.hatchet", HatchetConfig),
    ]
    for prefix, model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no Field(description=...)"
            assert field.description in _row(page, f"{prefix}.{name}")


def test_rows_show_type_default_and_environment() -> None:
    page = render()
    assert _row(page, "scheduler.backend").split(" | ")[1:4] == [
        "string",
        "`memory`",
        "`OWLCLAW_SCHEDULER_BACKEND` (overrides)",
    ]
    assert _row(page, "scheduler.memory.slots").split(" | ")[1:3] == ["integer >= 1", "`100`"]
    mode = _row(page, "scheduler.hatchet.mode").split(" | ")
    assert mode[1:3] == ["one of `production`, `lite`, `embedded`", "`production`"]
    for field, env in ENV_FALLBACKS.items():
        assert f"`{env}` (fallback)" in _row(page, f"scheduler.hatchet.{field}")
    assert _row(page, "scheduler.hatchet.api_token").split(" | ")[1:3] == ["secret string", "unset"]


class _ThirdPartyConfig(BaseModel):
    """A backend nobody ships."""

    region: str = Field(default="eu-1", description="Where the queue lives.")


class _ThirdPartyPlugin:
    @staticmethod
    @hookimpl
    def owlclaw_scheduler_register_backends(register: Callable[[BackendSpec], None]) -> None:
        register(
            BackendSpec(
                name="zz_queue",
                scheduler="some_pkg.backend:QueueScheduler",
                config=f"{__name__}:_ThirdPartyConfig",
                description="a third-party queue",
            )
        )


@pytest.fixture
def third_party_backend() -> Iterator[None]:
    pm = plugin_manager()
    pm.register(_ThirdPartyPlugin, name="zz_queue_test")
    try:
        yield
    finally:
        pm.unregister(name="zz_queue_test")


def test_an_installed_third_party_backend_gets_a_section(third_party_backend: None) -> None:
    page = render()
    assert "## `scheduler.zz_queue`: the zz_queue backend" in page
    assert _row(page, "scheduler.zz_queue.region") == (
        "| `scheduler.zz_queue.region` | string | `eu-1` |  | Where the queue lives. |"
    )
    assert page.index("scheduler.memory.slots") < page.index("scheduler.zz_queue.region")


def test_check_fails_on_a_stale_page_and_names_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(render() + "a hand edit\n", encoding="utf-8")
    assert main(["--check", "--path", str(page)]) == 1
    assert f"run: {COMMAND} --path {page}" in capsys.readouterr().err
    assert main(["--path", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == render()
    assert main(["--check", "--path", str(page)]) == 0


def test_write_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--path", str(tmp_path / "nope" / "configuration.md")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_stdout_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stdout"]) == 0
    assert capsys.readouterr().out == render()
