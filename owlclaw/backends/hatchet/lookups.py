"""Finding a task by id, and the listings: engine rows in, ``TaskInfo`` out.

An id is a run id (``run_task``, a cron tick) or our own schedule id, which
travels in the schedule's and then its run's metadata. The engine's answers
are turned into ``TaskInfo`` by :mod:`owlclaw.backends.hatchet.status` only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from owlclaw.backends.hatchet.client import Connection
from owlclaw.backends.hatchet.naming import RESERVED
from owlclaw.backends.hatchet.recent import Recent
from owlclaw.backends.hatchet.status import (
    EngineRun,
    LocalRecord,
    local_info,
    needs_details_error,
    schedule_info,
    task_info,
    with_id,
)
from owlclaw.backends.hatchet.wire import (
    HOLD_KEY,
    HOLD_SECONDS,
    ID_KEY,
    SDK_STATUSES,
    core_details_once,
    error_text,
)
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import SchedulerError, TaskNotFoundError, WaitTimeoutError
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until

__all__ = ["LIST_WINDOW", "LOST_AFTER", "POLL_SECONDS", "Lookups"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

LIST_WINDOW = timedelta(days=6)  # how far back list_tasks and id look-ups search runs
POLL_SECONDS = 0.2
CHECK_EVERY = 5.0  # seconds between core-side checks of one run (Lookups.settle)
READ_SIDE_GRACE = 10.0  # seconds a core-side end must stand before it overrides the read side
LIST_CHECKS = 4  # core-side checks in flight at once while listing (EngineRun.open_too_long)
LIST_CHECKS_MAX = 50  # core-side checks one listing may make
CORE_CALL_TIMEOUT = 10.0  # seconds for one core-side call made without the SDK's retries
# a run created here that neither side of the engine knows this long after its
# trigger returned was lost by the engine (docs/hatchet.md, "The engine or its
# database restarted"): its message queue drops a trigger not read within 5 min
LOST_AFTER = timedelta(minutes=6)
# What a process remembers (docs/hatchet.md, "What one process remembers"): a
# run or schedule it created until LOCAL_KEEP after its creation or due time
# (the read side shows it within seconds; LOST_AFTER must fit), a schedule it
# cancelled and a run the engine lost for FORGET_AFTER; REMEMBERED of each at most.
LOCAL_KEEP = timedelta(minutes=15)
FORGET_AFTER = timedelta(days=1)
REMEMBERED = 100_000


def _get_run_once(runs: Any, run_id: str) -> Any:
    """``runs.get`` without the SDK's retries: it retries a 404 for ~16 s, and an
    unknown id is an ordinary answer here."""
    with runs.client() as api_client:
        return runs._wra(api_client).v1_workflow_run_get(run_id)


class Lookups:
    """Look-ups and listings over one connection, plus what this process
    remembers of the tasks it created (``local``) and the schedules it
    cancelled (``cancelled``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.local: Recent[LocalRecord] = Recent(
            lambda record: record.due or record.created_at, keep=LOCAL_KEEP, limit=REMEMBERED
        )
        self.cancelled: Recent[TaskInfo] = Recent(
            lambda info: info.finished_at or utc_now(), keep=FORGET_AFTER, limit=REMEMBERED
        )
        self._checked: dict[str, float] = {}  # run id -> when its core side was last read (monotonic)
        # run id -> when its core side was first seen ended, and that answer
        self._ended: dict[str, tuple[float, Any]] = {}
        self._reported: set[str] = set()  # runs whose correction was logged
        # runs created here that the engine lost (Lookups.missing)
        self._lost: Recent[EngineRun] = Recent(
            lambda run: run.created_at or utc_now(), keep=FORGET_AFTER, limit=REMEMBERED
        )

    # reading one run

    async def get_run(self, run_id: str) -> Any | None:
        """The details of a run, or None if the engine knows no such run."""
        runs = self.conn.require().runs
        try:
            with self.conn.sdk("get a run", missing=f"no run {run_id!r}"):
                return await asyncio.to_thread(_get_run_once, runs, run_id)
        except TaskNotFoundError:
            return None

    async def engine_run(self, details: Any) -> EngineRun | None:
        """The run in its normalized shape; None for another namespace's run."""
        tasks = list(details.tasks or [])
        name = self.conn.names.strip(getattr(tasks[0], "workflow_name", None)) if tasks else None
        if name is None:
            name = await self.conn.name_of_workflow(details.run.workflow_id)
        return EngineRun.from_details(details, name) if name is not None else None

    async def _details_error(self, run_id: str) -> str | None:
        """The error the engine keeps only on its gRPC side (a timeout's message)."""
        try:
            with self.conn.sdk("get run details"):
                details = await self.conn.require().runs.aio_get_details(run_id)
        except SchedulerError:
            return None
        for task_run in (getattr(details, "task_runs", None) or {}).values():
            text = error_text(getattr(task_run, "error", None))
            if text:
                return text
        return None

    async def settle(self, run: EngineRun, *, may_call: bool = True) -> EngineRun:
        """The run, with its core-side outcome when the read side has shown it
        open for a while (``EngineRun.with_core_outcome``). Once reported, that
        outcome is kept: later reads do not flip back to the read side's.
        ``may_call=False`` applies only what is already known."""
        if not run.open_too_long(datetime.now(UTC)):
            return run
        if run.run_id not in self._ended:
            if not may_call or not self._check_due(run.run_id):
                return run
            try:
                with self.conn.sdk("get run details"):
                    details = await self.conn.require().runs.aio_get_details(run.run_id)
            except SchedulerError:
                return run  # the read side's answer stands
            if run.with_core_outcome(details) is run:
                return run
            self._ended[run.run_id] = (time.monotonic(), details)
        first, details = self._ended[run.run_id]
        # the read side normally follows within a second: report the core
        # side's outcome only once it has stood for READ_SIDE_GRACE
        if time.monotonic() - first < READ_SIDE_GRACE:
            return run
        settled = run.with_core_outcome(details)
        if run.run_id not in self._reported:
            self._reported.add(run.run_id)
            log.info(
                "run %s reads %s on the engine's read side but ended %s on its core side",
                run.run_id,
                run.status.value,
                settled.status.value,
                extra={"event": "read_side_behind"},
            )
        return settled

    async def missing(self, task_id: str, local: LocalRecord) -> EngineRun | None:
        """A run created here that the read side does not list, open for
        OPEN_CHECK_AFTER: its core-side outcome once it has one (the read side
        can miss a run altogether), FAILED when the core side has not known it
        for LOST_AFTER (the engine lost the trigger), else None."""
        if task_id in self._lost:
            return self._lost[task_id]
        run = EngineRun(
            run_id=task_id,
            task_name=local.task_name,
            status=TaskState.QUEUED,
            task_status=None,
            retry_count=None,
            started_at=None,
            finished_at=None,
            created_at=local.created_at,
            error=None,
            output=None,
            input=local.payload,
        )
        now = datetime.now(UTC)
        if not run.open_too_long(now):
            return None
        if task_id not in self._ended:
            if not self._check_due(task_id):
                return None
            runs = self.conn.require().runs
            try:
                with self.conn.sdk("get run details", missing=f"no run {task_id!r}"):
                    # first without the SDK's retries of "not found"
                    await asyncio.to_thread(core_details_once, runs._admin_client, task_id, CORE_CALL_TIMEOUT)
                    details = await runs.aio_get_details(task_id)
            except TaskNotFoundError:
                if now - local.created_at < LOST_AFTER:
                    return None
                return self._lose(run, now)
            except SchedulerError:
                return None  # the engine is down: nothing new
            if run.with_core_outcome(details) is run:
                return None
            self._ended[task_id] = (time.monotonic(), details)
        settled = await self.settle(run, may_call=False)
        return settled if settled is not run else None

    def _lose(self, run: EngineRun, now: datetime) -> EngineRun:
        assert run.created_at is not None
        error = (
            f"the engine lost this run: it accepted the trigger at {run.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"but knew no such run {(now - run.created_at).total_seconds():.0f} s later (seen when its "
            "PostgreSQL stopped just after a trigger; docs/hatchet.md); run the task again"
        )
        lost = self._lost[run.run_id] = replace(run, status=TaskState.FAILED, error=error, core_final=True)
        log.warning("run %s: %s", run.run_id, error, extra={"event": "run_lost"})
        return lost

    def _check_due(self, run_id: str) -> bool:
        """At most one core-side check of a run per CHECK_EVERY: a poll of a
        long run does not double its calls."""
        now = time.monotonic()
        if len(self._checked) > 1024:
            self._checked = {k: t for k, t in self._checked.items() if now - t < CHECK_EVERY}
            self._ended = {k: e for k, e in self._ended.items() if now - e[0] < 600}
            self._reported &= set(self._ended)
        if now - self._checked.get(run_id, -CHECK_EVERY) < CHECK_EVERY:
            return False
        self._checked[run_id] = now
        return True

    async def info(self, run: EngineRun, *, with_error: bool = True, may_call: bool = True) -> TaskInfo:
        """The run as a TaskInfo, reading its gRPC-side error first when it needs one."""
        run = await self.settle(run, may_call=may_call)
        options = self.conn.tasks.get(run.task_name)
        now = datetime.now(UTC)
        details_error = None
        if with_error and needs_details_error(run, options, now):
            details_error = await self._details_error(run.run_id)
        return task_info(run, options, now, details_error=details_error)

    # finding an id

    async def schedule_rows(self, task_id: str) -> list[Any]:
        with self.conn.sdk("list schedules"):
            rows = (
                await self.conn.require().scheduled.aio_list(additional_metadata={ID_KEY: task_id}, limit=10)
            ).rows or []
        return [
            r
            for r in rows
            if self.conn.names.strip(r.workflow_name) is not None
            and (r.additional_metadata or {}).get(ID_KEY) == task_id
        ]

    async def run_by_metadata(self, task_id: str) -> Any | None:
        """The details of the run that carries our schedule id."""
        with self.conn.sdk("list runs"):
            rows = (
                await self.conn.require().runs.aio_list(
                    since=utc_now() - LIST_WINDOW,
                    additional_metadata={ID_KEY: task_id},
                    limit=10,
                    include_payloads=False,
                )
            ).rows or []
        for row in rows:
            if (row.additional_metadata or {}).get(ID_KEY) == task_id:
                return await self.get_run(str(row.workflow_run_external_id))
        return None

    def _schedule_info(self, task_id: str, row: Any) -> TaskInfo:
        name = self.conn.names.strip(row.workflow_name) or str(row.workflow_name)
        return schedule_info(task_id, name, row.input, row.trigger_at)

    async def _find_any(self, task_id: str) -> TaskInfo | Any | None:
        """A pending schedule as TaskInfo, a run's details, or None."""
        local = self.local.get(task_id)
        if local is not None and local.held:  # a held short delay made here: its id is its run's
            return await self.get_run(task_id)
        if local is None or local.due is None:
            details = await self.get_run(task_id)
            if details is not None:
                return details
            if local is not None:
                return None
        for row in await self.schedule_rows(task_id):
            if row.workflow_run_id:
                details = await self.get_run(str(row.workflow_run_id))
                if details is not None:
                    return details
                continue
            return self._schedule_info(task_id, row)
        return await self.run_by_metadata(task_id)

    async def _find(self, task_id: str) -> TaskInfo | EngineRun | None:
        """A pending schedule, a run of this namespace, or None."""
        found = await self._find_any(task_id)
        if found is None or isinstance(found, TaskInfo):
            return found
        return await self.engine_run(found)  # None: another namespace's run

    async def lookup(self, task_id: str) -> TaskInfo | EngineRun:
        """What ``task_id`` names: a schedule's (or local) TaskInfo, or a run."""
        if not isinstance(task_id, str) or not task_id:
            raise TaskNotFoundError(f"no task with id {task_id!r}")
        found = await self._find(task_id)
        if found is None and task_id in self.cancelled:
            return self.cancelled[task_id]
        if found is None and task_id in self._lost:
            return self._lost[task_id]
        if found is None:
            local = self.local.get(task_id)
            if local is not None:
                if local.due is None or local.held:  # a run: the read side may have missed it
                    late = await self.missing(task_id, local)
                    if late is not None:
                        return late
                # created here; the engine's read side has not caught up yet
                return local_info(task_id, local, utc_now())
            # a schedule that fires right now leaves the schedule list before its
            # run is listed: look once more before saying it does not exist
            await asyncio.sleep(0.5)
            found = await self._find(task_id)
        if found is None:
            raise TaskNotFoundError(
                f"no task with id {task_id!r} (runs are searched for {LIST_WINDOW.days} days back)"
            )
        return found

    async def status(self, task_id: str) -> TaskInfo:
        """``get_task_status``: the answer carries the id the caller holds."""
        self.conn.require()
        found = await self.lookup(task_id)
        if isinstance(found, TaskInfo):
            return found
        return with_id(await self.info(found), task_id)

    async def wait(self, task_id: str, timeout: float) -> TaskInfo:
        """``wait_for_task``: read the status every POLL_SECONDS until it is final."""
        self.conn.require()
        try:
            return await poll_until(
                lambda: self.status(task_id),
                lambda info: info.state.is_final,
                timeout=timeout,
                interval=POLL_SECONDS,
                what=f"task {task_id} to finish",
            )
        except PollTimeoutError as exc:
            info = exc.last
        raise WaitTimeoutError(f"task {task_id} is still {info.state.value} after {timeout:g}s")

    # listings

    async def list_scheduled(self, task_name: str | None) -> list[TaskInfo]:
        """Schedules of this namespace that have not fired and were not cancelled, soonest first."""
        client = self.conn.require()
        kwargs: dict[str, Any] = {"limit": 1000}
        if task_name is not None:  # any name: another process may have registered it
            wid = await self.conn.workflow_id(task_name)
            if wid is None:
                return []
            kwargs["workflow_id"] = wid
        with self.conn.sdk("list schedules"):
            rows = (await client.scheduled.aio_list(**kwargs)).rows or []
        found = []
        for row in rows:
            name = self.conn.names.strip(row.workflow_name)
            if name is None or name in RESERVED or (task_name is not None and name != task_name):
                continue  # a schedule's links are owlclaw's own
            if row.workflow_run_id:
                continue
            task_id = (row.additional_metadata or {}).get(ID_KEY) or str(row.metadata.id)
            if task_id in self.cancelled:
                continue
            found.append(self._schedule_info(str(task_id), row))
        found += await self._held(task_name)
        found.sort(key=lambda t: t.scheduled_at or datetime.max.replace(tzinfo=UTC))
        return found

    async def _held(self, task_name: str | None) -> list[TaskInfo]:
        """Short delays queued as runs and held by a worker until due (triggers._hold)."""
        if not self.conn.config.hold_short_delays:
            return []
        kwargs: dict[str, Any] = {
            "since": utc_now() - timedelta(seconds=HOLD_SECONDS + 60),  # made at most HOLD_SECONDS before due
            "additional_metadata": {HOLD_KEY: "1"},
            "statuses": [SDK_STATUSES[TaskState.QUEUED], SDK_STATUSES[TaskState.RUNNING]],
            "limit": 1000,
            "only_tasks": False,
        }
        with self.conn.sdk("list runs"):
            rows = (await self.conn.require().runs.aio_list(**kwargs)).rows or []
        found: dict[str, TaskInfo] = {}
        for row in rows:
            name = self.conn.names.strip(row.workflow_name)
            if name is None or (task_name is not None and name != task_name):
                continue
            info = await self.info(EngineRun.from_listing(row, name), with_error=False)
            if info.state is TaskState.SCHEDULED:
                found[info.id] = info
        # made here and not listed yet: the engine's listing lags its writes a little
        now = utc_now()
        for task_id, local in list(self.local.items()):
            if not local.held or local.due is None or local.due <= now or task_id in found:
                continue
            if task_name is None or local.task_name == task_name:
                info = await self.status(task_id)
                if info.state is TaskState.SCHEDULED:
                    found[task_id] = info
        return list(found.values())

    async def list_runs(
        self, task_name: str | None, states: Iterable[TaskState] | None, limit: int
    ) -> list[TaskInfo]:
        """Runs of the last LIST_WINDOW, this namespace only, tombstones left out, newest first."""
        client = self.conn.require()
        wanted = set(states) if states is not None else None
        kwargs: dict[str, Any] = {
            "since": utc_now() - LIST_WINDOW,
            "limit": max(limit, 1) * 4 if task_name is None else max(limit, 1),
            "only_tasks": False,
        }
        if task_name is not None:  # any name: another process may have registered it
            wid = await self.conn.workflow_id(task_name)
            if wid is None:
                return []
            kwargs["workflow_ids"] = [wid]
        if wanted is not None:
            kwargs["statuses"] = [SDK_STATUSES[s] for s in wanted if s in SDK_STATUSES]
        found: list[TaskInfo] = []  # runs only: pending schedules are list_scheduled_tasks()
        if wanted is None or kwargs.get("statuses"):
            with self.conn.sdk("list runs"):
                rows = (await client.runs.aio_list(**kwargs)).rows or []
            runs = []
            for row in rows:
                name = self.conn.names.strip(row.workflow_name)
                if name is None or name in RESERVED or (task_name is not None and name != task_name):
                    continue  # a tombstone records a schedule that never became a run; links are owlclaw's
                runs.append(EngineRun.from_listing(row, name))
            checks = asyncio.Semaphore(LIST_CHECKS)
            now = datetime.now(UTC)
            # a backlog of old queued runs costs at most LIST_CHECKS_MAX core-side
            # calls per listing, the runs checked longest ago first
            stale = sorted(
                (r.run_id for r in runs if r.open_too_long(now)),
                key=lambda run_id: self._checked.get(run_id, float("-inf")),
            )
            callers = set(stale[:LIST_CHECKS_MAX])

            async def one(run: EngineRun) -> TaskInfo:
                async with checks:
                    return await self.info(run, may_call=run.run_id in callers)

            for info in await asyncio.gather(*(one(r) for r in runs)):
                if info.state is TaskState.SCHEDULED:
                    continue  # a held short delay is not a run yet
                if wanted is not None and info.state.is_final and info.state not in wanted:
                    continue  # listed open by the read side, ended on its core side (Lookups.settle)
                found.append(info)
        found.sort(key=lambda t: t.scheduled_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return found[:limit]
