"""How the Hatchet backend reads a run's state from what the engine reports.

The engine's read side is updated in steps, so a poll can catch it half-way.
These rows are shaped like the SDK's, copied from states seen on hatchet-lite
v0.105.0; the integration suite checks the same behaviour end to end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.exceptions import TaskRunError

from owlclaw.backends.hatchet.backend import HatchetScheduler
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.testing import register_conformance_tasks

STARTED = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def scheduler() -> HatchetScheduler:
    config = HatchetConfig.model_validate({"mode": "lite", "api_token": "t", "host_port": "127.0.0.1:1"})
    scheduler = HatchetScheduler(config)
    register_conformance_tasks(scheduler)  # conf_exponential_backoff: retries=2
    return scheduler


def _details(run_status: V1TaskStatus, task_status: V1TaskStatus, retry_count: int, attempt: int) -> Any:
    error = TaskRunError(
        f"planned failure on attempt {attempt}", "RuntimeError", "Traceback ...", "run-1"
    ).serialize(include_metadata=True)
    task = SimpleNamespace(
        workflow_name="owlclaw_conf_exponential_backoff",
        status=task_status,
        retry_count=retry_count,
        error_message=error,
    )
    run = SimpleNamespace(
        status=run_status,
        additional_metadata={},
        metadata=SimpleNamespace(id="run-1"),
        workflow_id="wf-1",
        started_at=STARTED if task_status is not V1TaskStatus.QUEUED else None,
        finished_at=None,
        created_at=STARTED,
        error_message=error,
        output=None,
        input={"tag": "x"},
    )
    return SimpleNamespace(run=run, tasks=[task])


async def test_a_run_whose_status_lags_its_retry_is_queued_not_failed(scheduler: HatchetScheduler) -> None:
    # attempt 2 of 3 failed; the task row already counts the retry, the run row still says FAILED
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.QUEUED, retry_count=2, attempt=2)
    info = await scheduler._run_info(details)
    assert (info.state, info.attempts) == (TaskState.QUEUED, 2)


async def test_the_moment_between_a_failure_and_its_retry_is_queued(scheduler: HatchetScheduler) -> None:
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=1, attempt=2)
    info = await scheduler._run_info(details)
    assert (info.state, info.attempts) == (TaskState.QUEUED, 2)
    assert info.error == "RuntimeError: planned failure on attempt 2"


async def test_the_last_attempt_failing_is_failed(scheduler: HatchetScheduler) -> None:
    details = _details(V1TaskStatus.FAILED, V1TaskStatus.FAILED, retry_count=2, attempt=3)
    info = await scheduler._run_info(details)
    assert (info.state, info.attempts) == (TaskState.FAILED, 3)
    assert info.error == "RuntimeError: planned failure on attempt 3"
