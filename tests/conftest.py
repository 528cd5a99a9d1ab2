"""Settings shared by the unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Seconds a unit test may take before pytest-timeout fails it. The slowest
#: takes ~6 s (a CLI subprocess); the default in pyproject.toml is sized for the
#: integration tests, which wait on a real engine.
UNIT_TIMEOUT = 120.0

_TESTS = Path(__file__).parent
_UNIT = _TESTS / "unit"

#: The slowest files (paths under tests/), longest first, with rough seconds
#: measured on the shared 2-core machine under load (pytest --durations,
#: 2026-11-30). They run first, in this order: with `--dist loadfile
#: --no-loadscope-reorder` (scripts/test-all.sh) each xdist process takes
#: whole files in collection order, and a long file that started last would
#: keep one process busy while the other idles. The figures only rank the
#: files; tests/unit/test_test_order.py checks each path exists.
SLOWEST_FILES: dict[str, float] = {
    "integration/test_hatchet_backend.py": 490,
    "integration/test_hatchet_schedules.py": 370,
    "integration/test_hatchet_schedule_faults.py": 330,
    "integration/test_cli_hatchet.py": 365,
    "integration/test_faults_hatchet.py": 410,
    "integration/test_containers_conformance.py": 275,
    "integration/test_hatchet_conformance.py": 270,
    "integration/test_soak_hatchet.py": 260,
    "integration/test_packaging.py": 250,
    "integration/test_hatchet_batch.py": 215,
    "integration/test_compose_production.py": 180,
    "integration/test_compose_lite.py": 175,
    "integration/test_benchmarks_engine_smoke.py": 135,
    "integration/test_hatchet_layout.py": 130,
    "integration/test_owlclaw_adapter_hatchet.py": 125,
    "integration/test_hatchet_short_delays.py": 110,
    "integration/test_hatchet_schedule_overlap.py": 45,
    "integration/test_hatchet_cron_conversion.py": 85,
    "integration/test_examples_hatchet.py": 120,
    "integration/test_worker_shutdown_hatchet.py": 80,
    "integration/test_demo_hatchet.py": 70,
}


def _seconds(item: pytest.Item) -> float:
    if not item.path.is_relative_to(_TESTS):  # a path outside tests/ given on the command line
        return 0.0
    return SLOWEST_FILES.get(item.path.relative_to(_TESTS).as_posix(), 0.0)


def slowest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` in place: the files of SLOWEST_FILES first, longest
    first; every other test keeps its place after them (a stable sort)."""
    items.sort(key=lambda item: -_seconds(item))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the slowest files first (a stable sort: every other test keeps its
    place), and give unit tests the tighter bound, unless ``--timeout`` was
    given on the command line (then it applies to every test without its own
    marker)."""
    slowest_first(items)
    if config.getoption("timeout", None) is not None:
        return
    for item in items:
        if item.path.is_relative_to(_UNIT) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
