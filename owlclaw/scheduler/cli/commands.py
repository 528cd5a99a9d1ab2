"""The task commands: run, schedule, cancel, status, list, crons, schedules."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

from owlclaw.scheduler.cli.output import (
    cron_row,
    emit,
    parse_at,
    parse_duration,
    parse_payload,
    schedule_row,
    task_row,
)
from owlclaw.scheduler.cli.session import Session
from owlclaw.scheduler.errors import InvalidScheduleError, NotSupportedError, TaskNotFoundError
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.protocol import Scheduler

__all__ = ["COMMANDS", "EXIT_TASK_FAILED", "EXIT_TIMEOUT"]

EXIT_TASK_FAILED = 4
EXIT_TIMEOUT = 5
_LIST_COLUMNS = ("id", "task", "state", "scheduled_at", "started_at", "attempts")
_CRON_COLUMNS = ("id", "task", "expression", "next_run_at", "payload")
_SCHEDULE_COLUMNS = ("id", "task", "rule", "timezone", "next_run_at", "paused", "note")


def _ephemeral_hint(session: Session, what: str, *, can_wait: bool = True) -> None:
    if session.ephemeral:
        # only `run` and `schedule` have --wait; a cron never ends, so waiting cannot keep it
        here = (
            "add --wait to run it here, or "
            if can_wait
            else "declare it with @scheduler.task(cron=...) and serve it with "
            "`owlclaw-scheduler worker APP`, or "
        )
        raise NotSupportedError(
            f"the {session.scheduler.backend_name} backend keeps {what} in this process, which exits "
            f"when the command returns: {here}use a backend with its own "
            "workers (e.g. OWLCLAW_SCHEDULER_BACKEND=hatchet)"
        )


async def _wait(session: Session, task_id: str, timeout: float, progress: bool) -> TaskInfo:
    """Wait for a final state; on a terminal, show the state as it changes."""
    scheduler = session.scheduler
    waiter = asyncio.ensure_future(scheduler.wait_for_task(task_id, timeout=timeout))
    if progress:
        started = time.monotonic()
        while not waiter.done():
            with contextlib.suppress(Exception):
                info = await scheduler.get_task_status(task_id)
                line = f"\rwaiting for {task_id}: {info.state.value}, attempt {info.attempts}"
                sys.stderr.write(f"{line}, {time.monotonic() - started:.0f}s ")
                sys.stderr.flush()
            await asyncio.wait({waiter}, timeout=0.5)
        sys.stderr.write("\n")
    return await waiter


def _show_final(info: TaskInfo, args: argparse.Namespace) -> int:
    emit(task_row(info), as_json=args.json)
    return 0 if info.state is TaskState.SUCCEEDED else EXIT_TASK_FAILED


def _progress(args: argparse.Namespace) -> bool:
    return not args.json and sys.stderr.isatty()


async def cmd_run(session: Session, args: argparse.Namespace) -> int:
    task_id = await session.scheduler.run_task(args.task, parse_payload(args.payload))
    if args.wait or session.ephemeral:
        if not args.wait:
            print(
                f"note: waiting for {task_id}: the {session.scheduler.backend_name} backend runs it in "
                "this process",
                file=sys.stderr,
            )
        return _show_final(await _wait(session, task_id, args.timeout, _progress(args)), args)
    emit({"id": task_id, "task": args.task, "state": "queued"}, as_json=args.json)
    return 0


async def cmd_schedule(session: Session, args: argparse.Namespace) -> int:
    if (args.in_ is None) == (args.at is None):
        raise InvalidScheduleError("schedule needs one of --in DURATION (e.g. 10m) or --at TIME (ISO 8601)")
    delay = parse_duration(args.in_) if args.in_ is not None else None
    at = parse_at(args.at) if args.at is not None else None
    payload = parse_payload(args.payload)
    if not args.wait:
        _ephemeral_hint(session, "schedules")
    task_id = await session.scheduler.schedule_task(args.task, payload, delay_seconds=delay, at=at)
    if args.wait:
        return _show_final(await _wait(session, task_id, args.timeout, _progress(args)), args)
    emit(task_row(await session.scheduler.get_task_status(task_id)), as_json=args.json)
    return 0


async def cmd_cancel(session: Session, args: argparse.Namespace) -> int:
    cancelled = await session.scheduler.cancel_task(args.id)
    info = await session.scheduler.get_task_status(args.id)
    emit({"id": args.id, "cancelled": cancelled, "state": info.state.value}, as_json=args.json)
    if not cancelled and not args.json:
        print(
            f"note: {args.id} had already finished ({info.state.value}); nothing to cancel", file=sys.stderr
        )
    return 0


async def cmd_status(session: Session, args: argparse.Namespace) -> int:
    if args.wait:
        return _show_final(await _wait(session, args.id, args.timeout, _progress(args)), args)
    emit(task_row(await session.scheduler.get_task_status(args.id)), as_json=args.json)
    return 0


async def cmd_list(session: Session, args: argparse.Namespace) -> int:
    scheduler = session.scheduler
    if args.scheduled:
        if args.state:
            raise InvalidScheduleError(
                "--state filters runs; drop it with --scheduled (those are all scheduled)"
            )
        infos = (await scheduler.list_scheduled_tasks(args.task))[: args.limit]
    else:
        states = [TaskState(s) for s in args.state] if args.state else None
        infos = await scheduler.list_tasks(args.task, states=states, limit=args.limit)
    emit([task_row(i) for i in infos], as_json=args.json, columns=_LIST_COLUMNS)
    return 0


async def cmd_crons(session: Session, args: argparse.Namespace) -> int:
    scheduler = session.scheduler
    if args.crons_command == "add":
        _ephemeral_hint(session, "crons", can_wait=False)
        payload = parse_payload(args.payload)
        cron_id = await scheduler.add_cron(args.task, args.expression, payload, timezone=args.timezone)
        added = [c for c in await scheduler.list_crons(args.task) if c.id == cron_id]
        emit(cron_row(added[0]) if added else {"id": cron_id}, as_json=args.json)
    elif args.crons_command == "remove":
        await scheduler.remove_cron(args.id)
        emit({"id": args.id, "removed": True}, as_json=args.json)
    else:
        crons = await scheduler.list_crons(args.task)
        emit([cron_row(c) for c in crons], as_json=args.json, columns=_CRON_COLUMNS)
    return 0


async def cmd_schedules(session: Session, args: argparse.Namespace) -> int:
    scheduler = session.scheduler
    action = args.schedules_command
    if action == "list":
        infos = await scheduler.list_schedules(args.task)
        emit([schedule_row(i) for i in infos], as_json=args.json, columns=_SCHEDULE_COLUMNS)
        return 0
    if session.ephemeral and action in ("pause", "resume", "skip", "backfill"):
        raise NotSupportedError(
            f"the {scheduler.backend_name} backend keeps schedules in this process, which exits when "
            f"the command returns, so `schedules {action}` would change nothing: call "
            f"scheduler.{action}_schedule(...) in the process that serves them, or use a backend "
            "with its own workers (e.g. OWLCLAW_SCHEDULER_BACKEND=hatchet)"
        )
    if action in ("preview", "backfill"):  # bad input first, then the look-up
        start, end = parse_at(args.start, "--start"), parse_at(args.end, "--end")
    sid = await _schedule_id(scheduler, args.id)
    if action == "preview":
        times = await scheduler.preview_schedule(sid, start, end)
        emit([{"nominal": t.isoformat()} for t in times], as_json=args.json, columns=("nominal",))
        return 0
    if action == "backfill":
        ids = await scheduler.backfill_schedule(sid, start, end)
        emit([{"id": i} for i in ids], as_json=args.json, columns=("id",))
        return 0
    if action == "pause":
        await scheduler.pause_schedule(sid, args.note)
    elif action == "resume":
        await scheduler.resume_schedule(sid)
    elif action == "skip":
        await scheduler.skip_schedule(sid, args.count)
    emit(schedule_row(await scheduler.get_schedule(sid)), as_json=args.json)
    return 0


async def _schedule_id(scheduler: Scheduler, given: str) -> str:
    """``given`` itself, or the one schedule of the task of that name."""
    infos = await scheduler.list_schedules()
    if any(i.id == given for i in infos):
        return given
    of_task = [i.id for i in infos if i.task_name == given]
    if len(of_task) == 1:
        return of_task[0]
    if of_task:
        raise TaskNotFoundError(
            f"task {given!r} has {len(of_task)} schedules: give one id ({', '.join(of_task)})"
        )
    raise TaskNotFoundError(
        f"no schedule with id {given!r}; list them with `owlclaw-scheduler schedules list`"
    )


COMMANDS: dict[str, Any] = {
    "run": cmd_run,
    "schedule": cmd_schedule,
    "cancel": cmd_cancel,
    "status": cmd_status,
    "list": cmd_list,
    "crons": cmd_crons,
    "schedules": cmd_schedules,
}
