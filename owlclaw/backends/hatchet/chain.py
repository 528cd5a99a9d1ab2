"""The engine side of schedules: the work ``gate.ScheduleBook`` returns as
``Effects``, done on the engine, and the internal link workflow.

A schedule is a chain of *links*: one-off scheduled runs of the internal
workflow ``<namespace>_owlclaw-schedule`` (``naming.LINK``), each carrying
``{schedule_id, nominal, gen}``. A link's run asks the book what its
occurrence means (``book.link``) and does what it answers: arm the next link,
trigger the user's run of each occurrence claimed, cancel runs (overlap
``cancel_previous``). The user run carries the occurrence in its metadata
(``wire.SCHEDULE_KEY``, ``NOMINAL_KEY``, ``OCCURRENCE_KEY``; ``DUE_KEY`` is the
nominal time, so lateness counts from it); ``worker.execute`` asks the book
before the user code runs (``begin``) and tells it when the run is final
(``ended``). The sweeper (``Sweeper``) repairs what the engine can lose.

Every decision is the book's, in one transaction; what is here is best
effort and idempotent: a duplicate link, or a link of an older generation,
is a no-op in the book, and a claimed occurrence whose trigger never ran is
handed back by ``book.unstarted``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hatchet_sdk import Hatchet
from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions, TriggerWorkflowOptions

from owlclaw.backends.hatchet.cancel import cancel_task
from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.naming import LINK
from owlclaw.backends.hatchet.rows import Begin
from owlclaw.backends.hatchet.status import LocalRecord
from owlclaw.backends.hatchet.store import ScheduleStore
from owlclaw.backends.hatchet.wire import (
    DUE_KEY,
    NOMINAL_KEY,
    OCCURRENCE_KEY,
    QUEUED_KEY,
    RESULT_KEY,
    SCHEDULE_KEY,
    utc,
)
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import SchedulerConnectionError, SchedulerError, TaskNotFoundError
from owlclaw.scheduler.kit import dump_json

if TYPE_CHECKING:
    from owlclaw.backends.hatchet.gate import Effects, Fire, Link, ScheduleBook

__all__ = ["SWEEP_EVERY", "Chain", "Sweeper", "parse_link"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

FIRE_CONCURRENCY = 8  # user runs triggered at once (a backfill or a catch-up fires many)
#: a link due sooner than this is run by the link before it (the engine's poll
#: would start it up to 5 s late), for at most FOLLOW_SECONDS per link run
FOLLOW_AHEAD = timedelta(seconds=6)
FOLLOW_SECONDS = 60.0
SWEEP_EVERY = 15.0  # seconds between the sweeper's passes
UNSTARTED_AFTER = timedelta(seconds=30)  # a claimed occurrence not triggered this long after its claim
PASS_TIMEOUT = 60.0  # longest one sweeper pass may take
ACTIVE_TIMEOUT = 15.0  # longest the overlap check's status look-ups may take (the row is locked meanwhile)
BEGIN_PATIENCE = 60.0  # seconds a run of an occurrence waits for the state database before failing


def parse_link(payload: Any) -> tuple[str, datetime, int]:
    """The link's input ``{schedule_id, nominal, gen}``; ValueError if it is not one."""
    if not isinstance(payload, dict):
        raise ValueError(f"a schedule link's input is a dict, got {type(payload).__name__}")
    sid, nominal, gen = payload.get("schedule_id"), payload.get("nominal"), payload.get("gen")
    if not isinstance(sid, str) or not isinstance(nominal, str) or not isinstance(gen, int):
        raise ValueError(f"a schedule link's input is {{schedule_id, nominal, gen}}, got {sorted(payload)}")
    when = utc(datetime.fromisoformat(nominal))
    assert when is not None
    return sid, when, gen


class Chain:
    """The engine work of one scheduler's schedules, over its ``Lookups``.

    The book is shared by every event loop of the process (the store keeps a
    pool per loop); ``close`` closes the calling loop's pool."""

    def __init__(
        self, lookups: Lookups, store: ScheduleStore, namespace: str, book: ScheduleBook | None = None
    ) -> None:
        from owlclaw.backends.hatchet.gate import ScheduleBook

        self.lookups = lookups
        self.store = store
        self.book = book if book is not None else ScheduleBook(store, namespace)
        self._pending: set[asyncio.Task[Any]] = set()
        self.draining = threading.Event()  # the worker got SIGTERM: links stop following (``_follow``)

    @property
    def names(self) -> Any:
        return self.lookups.conn.names

    async def close(self) -> None:
        """Wait for this event loop's background work, then close its pool."""
        loop = asyncio.get_running_loop()
        mine = [t for t in list(self._pending) if t.get_loop() is loop]  # the sweeper has a loop of its own
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)
        await self.store.close()

    def _client(self) -> Hatchet:
        return self.lookups.conn.require()

    # the effects

    async def execute(self, effects: Effects, *, kick: bool = True) -> list[str]:
        """Do ``effects``: delete stale links first, then arm the next ones
        (a schedule arms its next occurrence before it works), ask the cancels
        (confirmed in the background: the new runs do not wait), fire.
        Returns the ids of the runs triggered, in the order of ``effects.fire``.
        ``kick``: see ``arm`` (a link's own run follows its next links instead)."""
        for schedule_id in effects.disarm:
            await self.disarm(schedule_id)
        for link in effects.arm:
            await self.arm(link, kick=kick)
        for run_id in effects.cancel:  # asked now, confirmed in the background (as memory, no wait)
            self._later(self._cancel(run_id))
        if not effects.fire:
            return []
        room = asyncio.Semaphore(FIRE_CONCURRENCY)

        async def one(fire: Fire) -> str | None:
            async with room:
                return await self.fire(fire)

        started = await asyncio.gather(*(one(f) for f in effects.fire))
        return [run_id for run_id in started if run_id is not None]

    async def arm(self, link: Link, *, kick: bool = True) -> bool:
        """Create the link: a run of the link workflow at ``link.at``. False
        (logged) if the engine refused; the sweeper re-arms an overdue schedule.

        With ``kick``, a link due within FOLLOW_AHEAD also gets a run now, which
        waits in the worker until ``at`` (the engine's 5 s poll would start the
        scheduled one up to 5 s late); whichever asks the book second finds the
        occurrence handled and does nothing."""
        data = {
            "schedule_id": link.schedule_id,
            "nominal": link.nominal.isoformat(),
            "gen": link.gen,
            "at": link.at.isoformat(),
        }
        body = dump_json(data, "link")
        metadata = {SCHEDULE_KEY: link.schedule_id}
        admin = self._client()._client.admin
        try:
            with self.lookups.conn.sdk(f"arm schedule {link.schedule_id}"):
                options = ScheduleTriggerWorkflowOptions(additional_metadata=metadata)
                await admin.aio_schedule_workflow(LINK, [link.at], body, options)
                if kick and link.at - utc_now() < FOLLOW_AHEAD:
                    now = TriggerWorkflowOptions(additional_metadata=metadata)
                    run = contextvars.Context().run  # not a child of the run calling this
                    await asyncio.to_thread(run, admin.run_workflow, LINK, body, now)
        except SchedulerError as exc:
            log.error(
                "schedule link not armed schedule=%s nominal=%s: %s (the sweeper re-arms it)",
                link.schedule_id,
                link.nominal.isoformat(),
                exc,
            )
            return False
        return True

    async def disarm(self, schedule_id: str) -> int:
        """Delete the schedule's pending links, best effort (a stale link that
        still fires is a no-op); how many were deleted."""
        scheduled = self._client().scheduled
        link_name = self.names.workflow(LINK)
        deleted = 0
        try:
            with self.lookups.conn.sdk(f"list the links of schedule {schedule_id}"):
                rows = (
                    await scheduled.aio_list(additional_metadata={SCHEDULE_KEY: schedule_id}, limit=1000)
                ).rows or []
            for row in rows:
                if row.workflow_name != link_name or row.workflow_run_id:
                    continue
                if (row.additional_metadata or {}).get(SCHEDULE_KEY) != schedule_id:
                    continue
                with self.lookups.conn.sdk(f"delete a link of schedule {schedule_id}"):
                    await scheduled.aio_delete(str(row.metadata.id))
                deleted += 1
        except SchedulerError as exc:
            log.warning(
                "schedule links not all deleted schedule=%s: %s (stale links are no-ops)", schedule_id, exc
            )
        return deleted

    async def fire(self, fire: Fire) -> str | None:
        """Trigger the user run of one claimed occurrence and record its id in
        the book; None (logged) if the engine refused: ``book.unstarted`` hands
        the occurrence back to the sweeper."""
        metadata = {
            SCHEDULE_KEY: fire.schedule_id,
            NOMINAL_KEY: fire.nominal.isoformat(),
            OCCURRENCE_KEY: fire.occurrence_id,
            DUE_KEY: fire.nominal.isoformat(),
            QUEUED_KEY: utc_now().isoformat(),
        }
        admin = self._client()._client.admin
        options = TriggerWorkflowOptions(additional_metadata=metadata)
        payload = dump_json(fire.payload, "payload")
        # in a fresh context: triggered from a link's run, it would be that run's child
        trigger = contextvars.Context().run
        try:
            with self.lookups.conn.sdk(f"run task {fire.task_name!r} for schedule {fire.schedule_id}"):
                ref = await asyncio.to_thread(trigger, admin.run_workflow, fire.task_name, payload, options)
        except SchedulerError as exc:
            log.error(
                "schedule occurrence not triggered occurrence=%s: %s (retried by the sweeper)",
                fire.occurrence_id,
                exc,
            )
            return None
        run_id = str(ref.workflow_run_id)
        self.lookups.local[run_id] = LocalRecord(fire.task_name, fire.payload, utc_now(), None)
        try:
            superseded = await self.book.triggered(fire, run_id)
        except Exception as exc:  # noqa: BLE001 - the run exists; its begin() claims the occurrence
            log.warning(
                "schedule trigger not recorded occurrence=%s run=%s: %s", fire.occurrence_id, run_id, exc
            )
            return run_id
        if superseded:  # cancel_previous: a later occurrence fired before this run was recorded
            self._later(self._cancel(run_id))
        return run_id

    async def _cancel(self, run_id: str) -> None:
        try:
            cancelled = await cancel_task(self.lookups, run_id)
        except SchedulerError as exc:
            log.warning("previous run of a schedule not cancelled run=%s: %s", run_id, exc)
            return
        if not cancelled:
            log.info("previous run of a schedule had ended before its cancel run=%s", run_id)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; ``close`` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def active(self, run_ids: list[str]) -> set[str]:
        """Those of ``run_ids`` the engine does not report final (unknown ids are not active)."""

        async def state(run_id: str) -> str | None:
            try:
                info = await self.lookups.status(run_id)
            except TaskNotFoundError:
                log.debug("schedule run %s not found: counted as not active", run_id)
                return None
            return None if info.state.is_final else run_id

        # the book calls this with the schedule's row locked: bounded well under its 60 s idle limit
        try:
            found = await asyncio.wait_for(asyncio.gather(*(state(r) for r in run_ids)), ACTIVE_TIMEOUT)
        except TimeoutError:
            raise SchedulerConnectionError(
                f"the engine did not answer the status of {len(run_ids)} runs of a schedule within "
                f"{ACTIVE_TIMEOUT:g}s (overlap check); the link runs again"
            ) from None
        return {r for r in found if r is not None}

    # what the worker calls

    async def on_link(self, payload: Any) -> dict[str, Any]:
        """A link's run: the book's decision, then its effects."""
        try:
            schedule_id, nominal, gen = parse_link(payload)
        except ValueError as exc:
            log.error("schedule link with a bad input ignored: %s", exc)
            return {RESULT_KEY: None}
        at = payload.get("at") if isinstance(payload, dict) else None
        if isinstance(at, str) and not await self._wait_until(utc(datetime.fromisoformat(at))):
            return {RESULT_KEY: None}  # a kicked link on a stopping worker: the engine's link does it
        effects = await self.book.link(schedule_id, nominal, gen, self.active)  # raises: the link is retried
        started = await self.execute(effects, kick=False)
        followed = await self._follow(effects)
        return {RESULT_KEY: {"fired": started, "followed": followed}}

    async def _follow(self, effects: Effects) -> int:
        """Run the next links of a fast schedule in this run, on time.

        The engine picks scheduled runs up in a poll every 5 s, so a link armed
        less than ~5 s ahead starts up to 5 s late (docs/hatchet.md, "Schedules:
        how late a link starts"): a schedule firing every second would run
        behind. So while the next link falls due within FOLLOW_AHEAD, this run
        waits for it and asks the book itself, for at most FOLLOW_SECONDS. The
        engine's link of that occurrence still runs later, as a backup (the
        book answers an occurrence already handled with nothing to do)."""
        loop = asyncio.get_running_loop()
        stop = loop.time() + FOLLOW_SECONDS
        followed = 0
        while effects.arm:
            link = min(effects.arm, key=lambda k: k.at)
            wait = (link.at - utc_now()).total_seconds()
            if wait > FOLLOW_AHEAD.total_seconds() or loop.time() + wait > stop:
                break
            if not await self._wait_until(link.at):  # the worker is stopping: the engine's link takes over
                break
            effects = await self.book.link(link.schedule_id, link.nominal, link.gen, self.active)
            await self.execute(effects, kick=False)
            followed += 1
        return followed

    async def _wait_until(self, at: datetime | None) -> bool:
        """Sleep until ``at`` (at most FOLLOW_AHEAD + 1 s); False if the worker began to stop."""
        if at is None:
            return True
        limit = asyncio.get_running_loop().time() + FOLLOW_AHEAD.total_seconds() + 1.0
        while (left := (at - utc_now()).total_seconds()) > 0 and not self.draining.is_set():
            if asyncio.get_running_loop().time() >= limit:
                break
            await asyncio.sleep(min(left, 0.25))
        return not self.draining.is_set()

    async def begin(self, metadata: dict[str, Any], run_key: str) -> tuple[str, datetime, str, Begin]:
        """(schedule id, nominal, occurrence id, what the run may do: ``book.begin``).
        The state database unreachable (a restart) is waited for up to
        BEGIN_PATIENCE s: failing would spend one of the task's attempts."""
        schedule_id = str(metadata[SCHEDULE_KEY])
        nominal = utc(datetime.fromisoformat(str(metadata[NOMINAL_KEY])))
        assert nominal is not None
        occurrence = str(metadata.get(OCCURRENCE_KEY) or "")
        loop = asyncio.get_running_loop()
        give_up, delay = loop.time() + BEGIN_PATIENCE, 0.5
        while True:
            try:
                ok = await self.book.begin(schedule_id, nominal, run_key)
            except SchedulerConnectionError as exc:
                if loop.time() + delay > give_up:
                    raise
                log.warning("schedule occurrence %s waits for the state database: %s", occurrence, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            return schedule_id, nominal, occurrence, ok

    async def ended(self, schedule_id: str, nominal: datetime) -> None:
        """A fired run is final: tell the book, then do what it returns (logged, never raises)."""
        try:
            await self.execute(await self.book.ended(schedule_id, nominal))
        except Exception:
            log.exception(
                "schedule run end not recorded schedule=%s nominal=%s", schedule_id, nominal.isoformat()
            )

    def ended_later(self, schedule_id: str, nominal: datetime) -> None:
        """``ended`` in the background (a cancelled run cannot await it)."""
        self._later(self.ended(schedule_id, nominal))

    # the sweeper's pass

    async def sweep(self, slack: timedelta, unstarted_after: timedelta) -> tuple[int, int]:
        """Overdue schedules caught up and re-armed, claimed occurrences never
        triggered triggered: (runs fired, runs re-triggered)."""
        book = self.book
        fired = await self.execute(await book.sweep(slack, self.active))
        from owlclaw.backends.hatchet.gate import Effects

        again = await book.unstarted(unstarted_after)
        retriggered = await self.execute(Effects(fire=again)) if again else []
        return len(fired), len(retriggered)


class Sweeper:
    """The worker process's repair loop, in a thread with its own event loop:
    every ``every`` seconds one bounded pass of ``Chain.sweep`` (schedules
    whose link is overdue by ``slack`` catch up and re-arm; occurrences claimed
    but never triggered are triggered). Stops with the worker."""

    def __init__(
        self,
        chain: Chain,
        *,
        every: float = SWEEP_EVERY,
        slack: timedelta,
        unstarted_after: timedelta = UNSTARTED_AFTER,
    ) -> None:
        self.chain = chain
        self.every, self.slack, self.unstarted_after = every, slack, unstarted_after
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="owlclaw-schedule-sweeper", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = PASS_TIMEOUT) -> None:
        """Stop after the pass in progress (waiting at most ``timeout`` s for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the schedule sweeper did not stop within %gs; leaving it", timeout)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not await loop.run_in_executor(None, self._stop.wait, self.every):
                await self.once()
        finally:
            try:
                await self.chain.close()
            except Exception:
                log.debug("schedule sweeper: closing its book failed", exc_info=True)

    async def once(self) -> None:
        """One pass, bounded by PASS_TIMEOUT; failures are logged, the next pass tries again."""
        self.passes += 1
        try:
            fired, again = await asyncio.wait_for(
                self.chain.sweep(self.slack, self.unstarted_after), PASS_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - the loop outlives any one pass
            log.warning(
                "schedule sweeper pass failed: %s: %s (next pass in %gs)", type(exc).__name__, exc, self.every
            )
            return
        if fired or again:
            log.info(
                "schedule sweeper caught up: %d runs fired for overdue schedules, %d re-triggered",
                fired,
                again,
                extra={"event": "schedule_sweep", "fired": fired, "retriggered": again},
            )
