"""A held run's outcome confirmed to the engine (``confirm.py``), without an engine.

What a user relies on: a held run whose final event the engine lost (it
still reads RUNNING after the attempt) gets that event again, the same one
the SDK sent; one the engine has is left alone; the worker keeps looking
through an outage, but not forever; and only held runs pay for the looks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.clients.admin import RunStatus
from hatchet_sdk.contracts.dispatcher_pb2 import STEP_EVENT_TYPE_COMPLETED, STEP_EVENT_TYPE_FAILED
from hatchet_sdk.exceptions import NonRetryableException

from owlclaw.backends.hatchet import worker
from owlclaw.backends.hatchet.confirm import OutageWatch, confirm, final_event
from owlclaw.backends.hatchet.wire import DUE_KEY, HOLD_KEY, ID_KEY, RESULT_KEY
from owlclaw.scheduler.kit import make_options


class Engine:
    """Answers looks from a script of statuses (an exception: the engine is down)."""

    def __init__(self, *answers: RunStatus | Exception) -> None:
        self.answers = list(answers)
        self.looks = 0
        self.sent = 0

    async def look(self) -> RunStatus:
        self.looks += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def send(self) -> object:
        self.sent += 1
        return None


async def test_an_outcome_the_engine_has_is_not_sent_again() -> None:
    engine = Engine(RunStatus.COMPLETED)
    assert await confirm("run-1", engine.look, engine.send, after=0.01, within=1) == 0
    assert (engine.looks, engine.sent) == (1, 0)


async def test_a_lost_outcome_is_sent_again_until_the_engine_has_it() -> None:
    engine = Engine(RunStatus.RUNNING, RunStatus.RUNNING, RunStatus.COMPLETED)
    assert await confirm("run-1", engine.look, engine.send, after=0.01, within=5) == 2
    assert (engine.looks, engine.sent) == (3, 2)


async def test_looks_go_on_through_an_outage() -> None:
    down = ConnectionError("engine down")
    engine = Engine(down, down, RunStatus.RUNNING, RunStatus.FAILED)
    assert await confirm("run-1", engine.look, engine.send, after=0.01, within=5) == 1
    assert (engine.looks, engine.sent) == (4, 1)


async def test_it_gives_up_within_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(RunStatus.RUNNING)
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = await confirm("run-1", engine.look, engine.send, after=0.01, within=0.3)
    assert loop.time() - began <= 0.5
    assert sent == engine.sent >= 3  # waits 0.01, 0.02, 0.04, 0.08, 0.16: within 0.3
    assert "run run-1 still read RUNNING" in caplog.text


def test_the_event_sent_again_is_the_sdk_s() -> None:
    kind, payload, no_retry = final_event("run-1", {RESULT_KEY: {"n": 1}}, None)
    assert (kind, no_retry) == (STEP_EVENT_TYPE_COMPLETED, False)
    assert payload is not None and json.loads(payload) == {RESULT_KEY: {"n": 1}}
    kind, payload, no_retry = final_event("run-1", None, NonRetryableException("ValueError: bad"))
    assert (kind, no_retry) == (STEP_EVENT_TYPE_FAILED, True)
    assert payload is not None and "ValueError: bad" in payload
    kind, payload, no_retry = final_event("run-1", None, RuntimeError("flaky"))
    assert (kind, no_retry) == (STEP_EVENT_TYPE_FAILED, False)
    assert payload is not None and "flaky" in payload


@pytest.fixture
def confirmed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    seen: list[Any] = []
    monkeypatch.setattr(worker, "confirm_later", lambda ctx, event: seen.append(event))
    yield seen


def _ctx(metadata: dict[str, str]) -> Any:
    return SimpleNamespace(
        additional_metadata={ID_KEY: "task-1", **metadata},
        workflow_run_id="run-1",
        step_run_id="run-1",
        attempt_number=1,
        is_cancelled=False,
    )


async def test_only_held_runs_are_confirmed(confirmed: list[Any]) -> None:
    def echo(payload: dict[str, Any], ctx: Any) -> Any:
        return payload["v"]

    def bad(payload: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError("bad")

    held = {DUE_KEY: "2020-01-01T00:00:00+00:00", HOLD_KEY: "1"}  # due long ago: no wait
    assert await worker.execute(make_options(echo, "echo"), {"v": 1}, _ctx({}), None) == {RESULT_KEY: 1}
    assert confirmed == []
    assert await worker.execute(make_options(echo, "echo"), {"v": 2}, _ctx(held), None) == {RESULT_KEY: 2}
    with pytest.raises(RuntimeError, match="bad"):
        await worker.execute(make_options(bad, "bad"), {}, _ctx(held), None)
    assert [(kind, no_retry) for kind, _, no_retry in confirmed] == [
        (STEP_EVENT_TYPE_COMPLETED, False),
        (STEP_EVENT_TYPE_FAILED, False),
    ]
    assert json.loads(confirmed[0][1]) == {RESULT_KEY: 2}


class Watched:
    """An OutageWatch on a hand-moved clock, its looks answered or failed on demand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.answers = True
        self.resent: list[str] = []
        # its own loop sleeps through the test: the test looks by hand
        self.watch = OutageWatch(self.look, self.resend, every=3600, near=20.0, clock=lambda: self.now)

    async def look(self, ctx: Any) -> None:
        if not self.answers:
            raise ConnectionError("engine down")

    def resend(self, outcome: Any) -> None:
        self.resent.append(outcome[1]["run"])

    def run(self, name: str, *, at: float, cancelled: bool = False) -> None:
        """A run that ended at ``at``."""
        self.now = at
        self.watch.ended(None if cancelled else (SimpleNamespace(workflow_run_id=name), {"run": name}, None))

    async def look_at(self, at: float, *, answers: bool) -> None:
        self.now, self.answers = at, answers
        await self.watch.look_once()


async def test_runs_ending_while_the_engine_answers_are_not_confirmed() -> None:
    w = Watched()
    w.run("a", at=100)
    await w.look_at(101, answers=True)
    w.run("b", at=130)
    await w.look_at(131, answers=True)
    await w.look_at(200, answers=True)
    await w.look_at(201, answers=False)  # an outage long after both ended
    assert w.resent == []


async def test_runs_ending_near_an_outage_are_confirmed() -> None:
    w = Watched()
    w.run("long before", at=100)
    w.run("just before", at=125)
    await w.look_at(130, answers=False)  # 5 s after "just before" ended: it is confirmed
    assert w.resent == ["just before"] and w.watch.down
    w.run("during", at=135)
    await w.look_at(140, answers=True)  # back: runs ending in the next 20 s are confirmed too
    assert not w.watch.down
    w.run("just after", at=150)
    w.run("cancelled just after", at=151, cancelled=True)  # the engine made that end
    w.run("well after", at=165)
    assert w.resent == ["just before", "during", "just after"]


async def test_the_watch_looks_only_after_runs_end_and_stops_once_nothing_is_left() -> None:
    looks = []

    async def look(ctx: Any) -> None:
        looks.append(ctx)

    watch = OutageWatch(look, lambda outcome: None, every=0.01, near=0.05)
    watch.ended(None)  # a cancelled run: nothing to confirm, nothing to look at
    assert watch._task is None
    watch.ended((SimpleNamespace(workflow_run_id="a"), {}, None))
    task = watch._task
    assert task is not None
    await asyncio.wait_for(task, timeout=5)  # the ended run is past 0.05 s: the loop returns
    assert [ctx.workflow_run_id for ctx in looks][:1] == ["a"] and not watch.down


async def test_a_failure_on_the_worker_s_side_is_no_outage() -> None:
    async def closed(ctx: Any) -> None:
        raise ValueError("Cannot invoke RPC on closed channel!")

    resent: list[Any] = []
    watch = OutageWatch(closed, resent.append, every=3600)
    watch.ended((SimpleNamespace(workflow_run_id="a"), {}, None))
    await watch.look_once()
    assert not watch.down and resent == []
