"""``substitute_env``: the one ``${VAR}`` / ``${VAR:-default}`` substitution of
the ``scheduler:`` section and of the OwlClaw drop-in's ``hatchet:`` section."""

from pathlib import Path
from typing import Literal

import pytest

from owlclaw.integrations.hatchet_client import HatchetConfig
from owlclaw.scheduler.config import SchedulerConfig, substitute_env
from owlclaw.scheduler.errors import ConfigError

VAR = "OWLCLAW_TEST_SUBST"


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)


Mode = Literal["error", "empty"]


def sub(text: str, unset: Mode = "error") -> str:
    result: str = substitute_env(text, "owlclaw.yaml", "scheduler.key", unset=unset)
    return result


@pytest.mark.parametrize("mode", ["error", "empty"])
def test_set_variable_is_its_value(monkeypatch: pytest.MonkeyPatch, mode: Mode) -> None:
    monkeypatch.setenv(VAR, "v")
    assert sub(f"a-${{{VAR}}}-b", mode) == "a-v-b"
    assert sub(f"${{{VAR}:-d}}", mode) == "v"


@pytest.mark.parametrize("mode", ["error", "empty"])
def test_empty_variable_is_empty_without_default(monkeypatch: pytest.MonkeyPatch, mode: Mode) -> None:
    monkeypatch.setenv(VAR, "")
    assert sub(f"x${{{VAR}}}y", mode) == "xy"


@pytest.mark.parametrize("mode", ["error", "empty"])
def test_default_applies_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch, mode: Mode) -> None:
    assert sub(f"${{{VAR}:-dflt}}", mode) == "dflt"
    monkeypatch.setenv(VAR, "")
    assert sub(f"${{{VAR}:-dflt}}", mode) == "dflt"
    assert sub(f"${{{VAR}:-}}", mode) == ""


def test_unset_without_default_raises_naming_variable_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        sub(f"${{{VAR}}}")
    assert f"export {VAR}=" in str(err.value)
    assert "owlclaw.yaml: scheduler.key" in str(err.value)


def test_unset_without_default_reads_empty_when_asked() -> None:
    assert sub(f"a${{{VAR}}}b", "empty") == "ab"


def test_nested_values_are_substituted_with_their_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, "7")
    value = {"a": [f"${{{VAR}}}", 3], "b": {"c": f"${{{VAR}:-x}}"}}
    assert substitute_env(value, "f", "s") == {"a": ["7", 3], "b": {"c": "7"}}
    with pytest.raises(ConfigError, match=r"f: s\.b\[1\] uses"):
        substitute_env({"b": ["ok", "${OWLCLAW_TEST_SUBST_UNSET}"]}, "f", "s")


def test_dollar_dollar_is_not_an_escape() -> None:
    # ``$${VAR}`` has no escape meaning: the ``${VAR}`` in it is substituted
    assert sub(f"$${{{VAR}:-d}}") == "$d"


def test_both_sections_treat_an_empty_variable_with_default_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, "")
    path = tmp_path / "owlclaw.yaml"
    path.write_text(
        f"scheduler:\n  backend: ${{{VAR}:-memory}}\n"
        f"hatchet:\n  backend: memory\n  namespace: ${{{VAR}:-ns}}\n  worker_name: ${{{VAR}}}\n"
    )
    assert SchedulerConfig.from_yaml(path).backend == "memory"
    config = HatchetConfig.from_yaml(path)
    assert config.namespace == "ns"
    assert config.worker_name is None  # empty reads as unset
