from pathlib import Path

import pytest

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler import SchedulerConfig, create_scheduler
from owlclaw.scheduler.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OWLCLAW_CONFIG", "OWLCLAW_SCHEDULER_BACKEND", "SLOTS", "UNSET_VAR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "owlclaw.yaml"
    path.write_text(text)
    return path


def test_yaml_substitutes_variables_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTS", "7")
    path = write(
        tmp_path,
        "scheduler:\n  backend: ${BACKEND:-memory}\n  memory:\n    slots: ${SLOTS}\n",
    )
    config = SchedulerConfig.from_yaml(path)
    assert config.backend == "memory"
    assert config.section("memory") == {"slots": "7"}
    scheduler = create_scheduler(config)
    assert isinstance(scheduler, MemoryScheduler)
    assert scheduler.config.slots == 7


def test_unset_variable_names_file_key_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  memory:\n    slots: ${UNSET_VAR}\n")
    with pytest.raises(ConfigError) as err:
        SchedulerConfig.from_yaml(path)
    message = str(err.value)
    assert str(path) in message
    assert "scheduler.memory.slots" in message
    assert "export UNSET_VAR=" in message


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SchedulerConfig.from_yaml(path)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SchedulerConfig.from_yaml(path)


@pytest.mark.parametrize("text", ["- a list\n", "scheduler: just-a-string\n"])
def test_wrong_shapes_say_what_to_write(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        SchedulerConfig.from_yaml(write(tmp_path, text))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        SchedulerConfig.from_yaml(tmp_path / "nope.yaml")


def test_backend_section_is_validated_by_its_model(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  memory:\n    slots: 0\n    slotz: 3\n")
    with pytest.raises(ConfigError) as err:
        create_scheduler(path)
    message = str(err.value)
    assert "scheduler.memory.slots" in message and "greater than or equal to 1" in message
    assert "scheduler.memory.slotz: unknown setting" in message


def test_env_overrides_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "scheduler:\n  backend: something-else\n")
    monkeypatch.setenv("OWLCLAW_SCHEDULER_BACKEND", "memory")
    assert SchedulerConfig.from_yaml(path).backend == "memory"


def test_load_order_env_then_cwd_then_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SchedulerConfig.load().source == "<defaults>"
    cwd_file = write(tmp_path, "scheduler:\n  backend: memory\n")
    assert SchedulerConfig.load().source == "owlclaw.yaml"
    other = tmp_path / "other.yaml"
    other.write_text("scheduler:\n  memory: {slots: 3}\n")
    monkeypatch.setenv("OWLCLAW_CONFIG", str(other))
    assert SchedulerConfig.load().section("memory") == {"slots": 3}
    assert cwd_file.exists()


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert SchedulerConfig.from_yaml(write(tmp_path, "")).backend == "memory"


def test_a_misspelled_backend_section_names_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  backend: memory\n  memroy:\n    slots: 3\n")
    with pytest.raises(ConfigError) as err:
        create_scheduler(path)
    message = str(err.value)
    assert "scheduler.memroy" in message and "memory" in message and "hatchet" in message
    assert str(path) in message


def test_the_section_of_another_installed_backend_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  backend: memory\n  hatchet:\n    slots: 3\n")
    assert isinstance(create_scheduler(path), MemoryScheduler)
