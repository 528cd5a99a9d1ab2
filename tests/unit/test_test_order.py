"""tests/conftest.py runs the slowest files first: the list names real files,
and the sort puts them first, longest first, keeping every other test's place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.conftest import SLOWEST_FILES, slowest_first

TESTS = Path(__file__).resolve().parents[1]


@dataclass
class FakeItem:
    path: Path
    name: str


def test_every_slow_file_listed_exists() -> None:
    missing = [path for path in SLOWEST_FILES if not (TESTS / path).is_file()]
    figures = list(SLOWEST_FILES.values())
    assert len(set(figures)) == len(figures), f"two files share a figure: {SLOWEST_FILES}"
    assert not missing, (
        f"tests/conftest.py SLOWEST_FILES names files that are gone (rename or drop): {missing}"
    )


def test_slowest_files_first_longest_first_the_rest_in_place() -> None:
    ranked = sorted(SLOWEST_FILES, key=SLOWEST_FILES.__getitem__)  # shortest first: the sort must reverse it
    paths = ["unit/test_a.py", ranked[0], "unit/test_b.py", *ranked[1:], "unit/test_a.py"]
    items = [FakeItem(TESTS / path, f"t{i}") for i, path in enumerate(paths)]
    items.append(FakeItem(Path("/elsewhere/test_x.py"), "outside"))
    sorted_items: list[Any] = list(items)
    slowest_first(cast(Any, sorted_items))
    seen = [
        item.path.relative_to(TESTS).as_posix() if item.path.is_relative_to(TESTS) else "-"
        for item in sorted_items
    ]
    assert seen == [*reversed(ranked), "unit/test_a.py", "unit/test_b.py", "unit/test_a.py", "-"], seen
    # ties keep their order: the two test_a.py items are still t0 before the last one
    assert [item.name for item in sorted_items if item.path.name == "test_a.py"] == [
        "t0",
        f"t{len(paths) - 1}",
    ]
