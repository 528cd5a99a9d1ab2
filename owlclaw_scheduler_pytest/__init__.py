"""The pytest11 entry point of owlclaw-scheduler.

It loads ``owlclaw.backends.memory.pytest_plugin`` (the ``owlclaw_scheduler``
fixture). It lives outside the ``owlclaw`` namespace so that pytest still
starts when ``owlclaw`` cannot be imported from this distribution: in
OwlClaw's source checkout, OwlClaw's regular ``owlclaw`` package hides ours
unless its ``__init__.py`` extends its path. The fixture then fails, saying so.
"""

from __future__ import annotations

from typing import NoReturn

import pytest

__all__ = ["pytest_configure"]

FIX = (
    "another package named owlclaw (a regular package, e.g. OwlClaw's source checkout) hides "
    "owlclaw-scheduler's; add `__path__ = __import__('pkgutil').extend_path(__path__, __name__)` "
    "to its owlclaw/__init__.py (docs/migrating-from-owlclaw-hatchet-client.md)"
)

try:
    from owlclaw.backends.memory.pytest_plugin import pytest_configure
except ImportError as exc:  # shadowed: see FIX
    _error = f"{type(exc).__name__}: {exc}"

    class _Unavailable:
        @pytest.fixture
        def owlclaw_scheduler(self) -> NoReturn:
            pytest.fail(f"owlclaw-scheduler cannot be imported here ({_error}): {FIX}", pytrace=False)

    def pytest_configure(config: pytest.Config) -> None:
        if not config.pluginmanager.has_plugin("owlclaw_scheduler_memory_fixtures"):
            config.pluginmanager.register(_Unavailable(), "owlclaw_scheduler_memory_fixtures")
