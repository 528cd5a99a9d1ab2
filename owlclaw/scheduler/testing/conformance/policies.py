"""The policies a task declares: retries, backoff, retry rules, on_failure,
timeouts, concurrency and priority."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase
from owlclaw.scheduler.testing.tasks import EXPONENTIAL_BACKOFF, FIXED_BACKOFF

__all__ = ["PolicyConformance"]


class PolicyConformance(ConformanceBase):
    """What retries, backoff, on_failure, timeouts, concurrency keys and priorities do."""

    async def test_retries_until_success(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_flaky", {"fail_times": 2}))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.attempts == 3
        assert info.result == 3

    async def test_retries_are_bounded(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_flaky", {"fail_times": 9}))
        assert info.state is TaskState.FAILED
        assert info.attempts == 3
        assert info.error and "planned failure on attempt 3" in info.error

    async def test_no_final_state_before_the_last_attempt(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_flaky", {"fail_times": 9})

        async def step() -> TaskInfo:
            # on a virtual clock time moves only through advance(): step it between reads
            info = await scheduler.get_task_status(task_id)
            if not info.state.is_final:
                await self.advance(scheduler, 0.05)
            return info

        info: TaskInfo = await poll_until(
            lambda: step(),
            lambda i: i.state.is_final,
            timeout=self.wait_timeout,
            interval=0,
            what=f"task {task_id} to reach a final state",
        )
        assert info.state is TaskState.FAILED
        assert info.attempts == 3, f"final after attempt {info.attempts} of 3"

    async def test_timed_out_attempt_fails_and_counts(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_timeout", {"seconds": 10}))
        assert info.state is TaskState.FAILED
        assert info.attempts == 2
        assert info.error and "timeout" in info.error.lower()

    async def test_backoff_waits_before_each_retry(self, scheduler: Scheduler) -> None:
        base, cap = EXPONENTIAL_BACKOFF
        expected: dict[str, list[float]] = {
            "conf_fixed_backoff": [FIXED_BACKOFF, FIXED_BACKOFF],
            "conf_exponential_backoff": [min(base**1, cap), min(base**2, cap)],  # 2 s, then 3 s
        }
        tag = uuid.uuid4().hex
        ids = {name: await scheduler.run_task(name, {"tag": f"{tag}-{name}"}) for name in expected}
        for name, task_id in ids.items():
            info = await scheduler.wait_for_task(task_id, timeout=self.wait_timeout + 2 * self.retry_slack)
            assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 3), (name, info.error)
        for name, waits in expected.items():
            stamps = await self._attempt_starts(scheduler, f"{tag}-{name}", attempts=3)
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
            for gap, wait in zip(gaps, waits, strict=True):
                # never early; late by at most the backend's retry slack
                assert wait - 0.001 <= gap <= wait + self.retry_slack, (name, gaps)

    async def test_started_at_is_the_first_attempts_start(self, scheduler: Scheduler) -> None:
        # conf_fixed_backoff fails twice, waiting FIXED_BACKOFF seconds before each retry
        tag = uuid.uuid4().hex
        task_id = await scheduler.run_task("conf_fixed_backoff", {"tag": tag})
        info = await scheduler.wait_for_task(task_id, timeout=self.wait_timeout + 2 * self.retry_slack)
        assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 3), info.error
        first, second, third = await self._attempt_starts(scheduler, tag, attempts=3)
        assert info.started_at is not None and info.finished_at is not None
        slack = timedelta(seconds=self.start_tolerance)
        # the first attempt's: before the second attempt by most of the backoff
        latest = (
            second - timedelta(seconds=FIXED_BACKOFF / 2)
            if self.started_at_is_first_attempt
            else third + slack
        )
        assert first - slack <= info.started_at <= latest, (
            f"run {task_id}: started_at {info.started_at.isoformat()}, attempts started at "
            f"{first.isoformat()}, {second.isoformat()}, {third.isoformat()}"
        )
        assert info.started_at <= info.finished_at and info.finished_at >= third - slack, (
            info.finished_at,
            third,
        )

    async def _attempt_starts(self, scheduler: Scheduler, tag: str, attempts: int) -> list[datetime]:
        """Start times of each attempt, from the conf_attempt_log schedules they made."""

        async def mine() -> list[TaskInfo]:
            pending = await scheduler.list_scheduled_tasks(task_name="conf_attempt_log")
            return [p for p in pending if p.payload.get("tag") == tag]

        def stamps(runs: list[TaskInfo]) -> dict[int, str]:
            return {p.payload["attempt"]: p.payload["started"] for p in runs}

        try:
            runs: list[TaskInfo] = await poll_until(
                lambda: mine(),
                lambda runs: len(stamps(runs)) >= attempts,
                timeout=10,
                what=f"conf_attempt_log schedules of {attempts} attempts tagged {tag}",
            )
        except PollTimeoutError as exc:
            runs = exc.last or []  # the assertion below says which attempts are missing
        for p in runs:
            await scheduler.cancel_task(p.id)
        found = stamps(runs)
        assert sorted(found) == list(range(1, attempts + 1)), found
        return [datetime.fromisoformat(found[n]) for n in sorted(found)]

    @pytest.mark.parametrize(
        ("error", "attempts"),
        [("connection", 2), ("refused", 1), ("value", 1), ("nonretryable", 1)],
        ids=["retry_on-match", "no_retry_on-wins", "not-in-retry_on", "NonRetryableError"],
    )
    async def test_retry_rules_decide_whether_an_error_is_retried(
        self, scheduler: Scheduler, error: str, attempts: int
    ) -> None:
        task_id = await scheduler.run_task("conf_retry_rules", {"raise": error})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.FAILED
        assert info.attempts == attempts
        assert info.error and f"planned {error} on attempt {attempts}" in info.error
        raised = {
            "connection": "ConnectionError",
            "refused": "ConnectionRefusedError",
            "value": "ValueError",
            "nonretryable": "NonRetryableError",
        }[error]
        assert info.error.startswith(f"{raised}: "), info.error

    async def test_on_failure_runs_once_after_the_last_attempt(self, scheduler: Scheduler) -> None:
        tag = uuid.uuid4().hex
        failed = await scheduler.run_task("conf_on_failure", {"fail_times": 9, "tag": tag})
        recovered = await scheduler.run_task("conf_on_failure", {"fail_times": 1, "tag": tag})
        assert (await self.finish(scheduler, failed)).state is TaskState.FAILED
        assert (await self.finish(scheduler, recovered)).state is TaskState.SUCCEEDED
        records = await self._failure_records(scheduler, tag, want=1)
        assert len(records) == 1, records
        record = (await self.finish(scheduler, records[0].id)).result
        assert record == {
            "task_name": "conf_on_failure",
            "task_id": failed,
            "payload": {"fail_times": 9, "tag": tag},
            "error": "ValueError: planned failure on attempt 2",
            "attempts": 2,
        }
        await self.advance(scheduler, 1)  # a second call would show up by now
        assert len(await self._failure_records(scheduler, tag, want=2, timeout=1)) == 1

    async def test_on_failure_runs_when_the_last_attempt_times_out(self, scheduler: Scheduler) -> None:
        tag = uuid.uuid4().hex
        task_id = await scheduler.run_task("conf_timeout_on_failure", {"tag": tag})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.FAILED
        assert info.error and "exceeded its timeout of 1s" in info.error
        records = await self._failure_records(scheduler, tag, want=1)
        assert len(records) == 1, records
        record = (await self.finish(scheduler, records[0].id)).result
        assert record["task_id"] == task_id and record["attempts"] == 1
        assert record["error"] == "TimeoutError: task 'conf_timeout_on_failure' exceeded its timeout of 1s"

    async def _failure_records(
        self, scheduler: Scheduler, tag: str, want: int, timeout: float = 10
    ) -> list[TaskInfo]:
        """Runs of conf_failure_sink for this test's tag (listings may lag a little)."""

        async def mine() -> list[TaskInfo]:
            runs = await scheduler.list_tasks(task_name="conf_failure_sink", limit=1000)
            return [r for r in runs if (r.payload or {}).get("payload", {}).get("tag") == tag]

        try:
            found: list[TaskInfo] = await poll_until(
                lambda: mine(),
                lambda found: len(found) >= want,
                timeout=timeout,
                what=f"{want} conf_failure_sink runs tagged {tag}",
            )
        except PollTimeoutError as exc:
            found = exc.last or []  # fewer than `want` is an answer too: callers assert on the count
        return found

    async def test_concurrency_limit_per_key_queues_runs_and_drops_none(self, scheduler: Scheduler) -> None:
        agent = uuid.uuid4().hex[:8]  # a fresh key: runs of earlier tests hold no slot of it
        a_ids = [
            await scheduler.run_task("conf_limited", {"agent_id": f"a{agent}", "seconds": 2})
            for _ in range(2)
        ]
        b_id = await scheduler.run_task("conf_limited", {"agent_id": f"b{agent}", "seconds": 2})
        await self.wait_for_state(scheduler, b_id, {TaskState.RUNNING})
        states = {(await scheduler.get_task_status(i)).state for i in a_ids}
        assert states == {TaskState.RUNNING, TaskState.QUEUED}, states  # one of agent a's waits
        infos = [await self.finish(scheduler, i) for i in [*a_ids, b_id]]
        assert all(i.state is TaskState.SUCCEEDED for i in infos), [i.error for i in infos]
        # when each run's code ran, by the real clock (conf_limited reports it):
        # the runs' own timestamps do not move on a virtual clock
        ran = [
            (datetime.fromisoformat(i.result["started"]), datetime.fromisoformat(i.result["finished"]))
            for i in infos
        ]
        (a1, a2), b = sorted(ran[:2]), ran[2]
        assert a2[0] >= a1[1] - timedelta(seconds=0.5), (
            f"agent a's runs overlapped: {ran[:2]}"
        )  # one at a time
        assert b[0] <= a1[1], f"agent b's run {b} waited for agent a's first {a1}"  # b not kept behind a
        first, second = sorted(infos[:2], key=lambda i: i.started_at or datetime.max.replace(tzinfo=UTC))
        assert first.finished_at and second.started_at and infos[2].started_at
        assert second.started_at >= first.finished_at - timedelta(seconds=0.5)  # one at a time
        assert infos[2].started_at <= first.finished_at  # agent b was not kept waiting behind a

    async def test_one_slot_runs_one_at_a_time_highest_priority_first(
        self, single_slot_scheduler: Scheduler
    ) -> None:
        # Hatchet orders by priority among runs of one task, so one task it is
        scheduler = single_slot_scheduler
        blocker = await scheduler.run_task("conf_prioritized", {"seconds": 2, "label": "blocker"})
        await self.wait_for_state(scheduler, blocker, {TaskState.RUNNING})
        queued = [
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "low"}),
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "low"}, priority=1),
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "high"}, priority=3),
        ]
        assert (await scheduler.get_task_status(queued[-1])).state is TaskState.QUEUED
        runs = [await self.finish(scheduler, i) for i in [blocker, *queued]]
        assert all(r.state is TaskState.SUCCEEDED for r in runs), [r.error for r in runs]
        spans: list[tuple[datetime, datetime, str]] = []
        for r in runs:
            assert r.started_at and r.finished_at
            spans.append((r.started_at, r.finished_at, r.result))
        spans.sort()
        assert [label for _, _, label in spans] == ["blocker", "high", "low", "low"]
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end - timedelta(seconds=0.5), spans  # never two at once
