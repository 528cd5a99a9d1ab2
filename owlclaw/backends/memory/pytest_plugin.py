"""pytest plugin (``pytest11`` entry point ``owlclaw_scheduler_memory``): fixtures for testing agents.

``owlclaw_scheduler``: a connected in-memory scheduler on a virtual clock
with its worker running. Declare tasks on it, or copy your app's with
``owlclaw_scheduler.add_tasks(app_scheduler.tasks.values())`` before
scheduling. Move time with ``await owlclaw_scheduler.advance(seconds)``.

The fixture is async, so it needs pytest-asyncio (the ``test`` extra). This
module does not import it, so the plugin loads in any environment where the
package is installed: the fixture is defined at
``pytest_configure`` time, from :mod:`owlclaw.backends.memory._pytest_fixtures`
when pytest-asyncio is active, else as a fixture that fails saying what to install.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import pytest

__all__ = ["INSTALL_HINT", "pytest_configure"]

INSTALL_HINT = "pip install 'owlclaw-scheduler[test]'"
FIXTURES = "owlclaw_scheduler_memory_fixtures"  # the name the fixtures' plugin is registered under


def _asyncio_active(config: pytest.Config) -> bool:
    """pytest-asyncio is registered (by its entry point or ``-p``), not blocked by ``-p no:asyncio``."""
    module = sys.modules.get("pytest_asyncio.plugin")
    return module is not None and config.pluginmanager.is_registered(module)


class _WithoutAsyncio:
    """Stands in for the async fixture when pytest-asyncio is absent or disabled."""

    @pytest.fixture
    def owlclaw_scheduler(self) -> NoReturn:
        pytest.fail(
            "the owlclaw_scheduler fixture is async and needs pytest-asyncio, which is not "
            f"installed or is disabled (-p no:asyncio); install it with: {INSTALL_HINT}",
            pytrace=False,
        )


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin(FIXTURES):
        return
    fixtures: object
    if _asyncio_active(config):
        from owlclaw.backends.memory import _pytest_fixtures

        fixtures = _pytest_fixtures
    else:
        fixtures = _WithoutAsyncio()
    config.pluginmanager.register(fixtures, FIXTURES)
