"""Settings shared by the unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Seconds a unit test may take before pytest-timeout fails it. The slowest
#: takes ~6 s (a CLI subprocess); the default in pyproject.toml is sized for the
#: integration tests, which wait on a real engine.
UNIT_TIMEOUT = 120.0

_UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give unit tests the tighter bound, unless ``--timeout`` was given on the
    command line (then it applies to every test without its own marker)."""
    if config.getoption("timeout", None) is not None:
        return
    for item in items:
        if item.path.is_relative_to(_UNIT) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
