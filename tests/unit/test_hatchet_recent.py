"""A Hatchet process's memory of what it made is bounded (``recent.Recent``).

Before, ``Lookups.local`` kept a record (with its payload) of every run and
schedule a process ever created: a long-running agent service grew without
end. Records are now forgotten once the engine's read side answers for them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owlclaw.backends.hatchet.lookups import (
    FORGET_AFTER,
    LOCAL_KEEP,
    LOST_AFTER,
    REMEMBERED,
    Lookups,
)
from owlclaw.backends.hatchet.recent import Recent
from owlclaw.backends.hatchet.status import OPEN_CHECK_AFTER, EngineRun, LocalRecord
from owlclaw.scheduler.errors import TaskNotFoundError
from owlclaw.scheduler.models import TaskState

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(minutes=15)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _recent(clock: _Clock, limit: int = 1000) -> Recent[datetime]:
    return Recent(lambda until: until, keep=KEEP, limit=limit, clock=clock)


def test_an_entry_is_forgotten_keep_after_its_time() -> None:
    clock = _Clock()
    recent = _recent(clock)
    recent["run"] = T0  # a run: needed from its creation
    recent["schedule"] = T0 + timedelta(days=2)  # a schedule: needed until it fires
    clock.now = T0 + KEEP + timedelta(seconds=1)
    recent["later"] = clock.now
    assert "run" not in recent and recent.get("run") is None
    assert recent["schedule"] == T0 + timedelta(days=2)
    clock.now = T0 + timedelta(days=2) + KEEP + timedelta(seconds=1)
    recent["last"] = clock.now
    assert [key for key, _ in recent.items()] == ["last"]


def test_past_its_limit_the_entry_needed_least_long_goes_first() -> None:
    clock = _Clock()
    recent = _recent(clock, limit=3)
    for key, minutes in (("a", 5), ("b", 1), ("c", 9), ("d", 3)):
        recent[key] = T0 + timedelta(minutes=minutes)
    assert sorted(key for key, _ in recent.items()) == ["a", "c", "d"]
    assert len(recent) == 3


def test_a_replaced_entry_keeps_its_new_value_and_time() -> None:
    clock = _Clock()
    recent = _recent(clock)
    recent["id"] = T0
    recent["id"] = T0 + timedelta(hours=1)  # e.g. a record rewritten with a later due time
    clock.now = T0 + KEEP + timedelta(seconds=1)
    recent["other"] = clock.now
    assert recent["id"] == T0 + timedelta(hours=1)
    for _ in range(10_000):  # rewriting one key does not grow the heap without bound
        recent["id"] = T0 + timedelta(hours=1)
    assert len(recent._order) < 200


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Recent(lambda until: until, keep=KEEP, limit=0)


def test_a_process_forgets_the_runs_it_made_once_the_engine_answers_for_them() -> None:
    lookups = Lookups(object())  # type: ignore[arg-type]
    # long enough to find a run the engine lost (LOST_AFTER) once the read side is checked
    assert LOCAL_KEEP > LOST_AFTER + OPEN_CHECK_AFTER
    now = datetime.now(UTC)
    lookups.local["old"] = LocalRecord("report", {"n": 1}, now - LOCAL_KEEP - timedelta(seconds=1), None)
    lookups.local["due"] = LocalRecord("report", {"n": 2}, now - timedelta(days=1), now + timedelta(days=1))
    lookups.local["new"] = LocalRecord("report", {"n": 3}, now, None)
    assert sorted(key for key, _ in lookups.local.items()) == ["due", "new"]
    assert REMEMBERED >= 10_000 and FORGET_AFTER >= LOCAL_KEEP


async def test_a_lost_run_still_reads_lost_once_its_record_is_forgotten() -> None:
    lookups = Lookups(object())  # type: ignore[arg-type]

    async def nowhere(task_id: str) -> Any:
        return None  # the engine knows no such run

    lookups._find = nowhere  # type: ignore[method-assign]
    lost = EngineRun(
        run_id="run-1",
        task_name="report",
        status=TaskState.FAILED,
        task_status=None,
        retry_count=None,
        started_at=None,
        finished_at=None,
        created_at=datetime.now(UTC) - LOCAL_KEEP,
        error="the engine lost this run: ... run the task again",
        output=None,
        core_final=True,
    )
    lookups._lost["run-1"] = lost
    assert lookups.local.get("run-1") is None
    assert await lookups.lookup("run-1") is lost
    with pytest.raises(TaskNotFoundError):
        await lookups.lookup("run-2")
