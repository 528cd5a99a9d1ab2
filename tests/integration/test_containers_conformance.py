"""The Hatchet conformance suite once more, on containers started by
testcontainers: ``postgres:15-bookworm`` (running deploy/init-db.sql) and
``hatchet-lite``, the images .ci/build-images.sh builds, on loopback ports.

The rest of the integration tests share the session's engine (the local
processes, unless ``OWLCLAW_TEST_ENGINE=containers``); this module starts its
own containers and removes them when it ends. Without Docker it skips, except
under CI, where it fails with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import WorkerProcess, start_worker

from tests.integration import test_hatchet_conformance as on_hatchet
from tests.integration.conftest import HatchetEngine, _unavailable, container_engine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hatchet_engine() -> Iterator[HatchetEngine]:
    reasons: list[str] = []
    with container_engine(f"owlclaw-test-{uuid.uuid4().hex[:10]}", reasons) as engine:
        if engine is not None:
            yield engine
            return
    _unavailable(reasons)


@pytest.fixture(scope="module")
def conformance_worker(
    hatchet_engine: HatchetEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    workers = Path(tmp_path_factory.mktemp("container-workers"))
    worker = start_worker(hatchet_engine, workers, name="conformance")
    try:
        yield worker
    finally:
        worker.stop()


class TestHatchetOnContainers(on_hatchet.TestHatchet):
    """Every conformance test, against the containers' engine."""
