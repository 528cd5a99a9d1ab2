"""The trigger batcher's bookkeeping with a fake bulk call: how requests are
formed, split and answered, and how errors reach their own callers.
Behaviour on the engine: tests/integration/test_hatchet_batch.py."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from hatchet_sdk.config import TenacityConfig
from hatchet_sdk.contracts.v1.shared import trigger_pb2
from hatchet_sdk.runnables.contextvars import ctx_step_run_id
from hatchet_sdk.worker.runner.utils.capture_logs import AsyncLogSender, LogRecord, capture_logs

from owlclaw.backends.hatchet.batch import TriggerBatcher, splits
from owlclaw.backends.hatchet.worker import keep_own_logs_local
from owlclaw.scheduler.errors import SchedulerConnectionError


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name


class _Response:
    def __init__(self, ids: list[str]) -> None:
        self.workflow_run_ids = ids


def _batcher(fail: Any, max_pending: int = 100) -> tuple[TriggerBatcher, list[list[str]]]:
    """A batcher whose bulk call answers id-<input>, or raises ``fail(inputs)``."""
    # what the batcher reads of the SDK's ClientConfig
    config: Any = SimpleNamespace(
        token="not-a-token", tenacity=TenacityConfig(max_attempts=0), grpc_max_send_message_length=4 << 20
    )
    batcher = TriggerBatcher(config, "localhost:1", max_pending)
    sent: list[list[str]] = []

    async def send(request: Any) -> _Response:
        inputs = [w.input for w in request.workflows]
        sent.append(inputs)
        await asyncio.sleep(0)
        error = fail(inputs)
        if error is not None:
            raise error
        return _Response([f"id-{i}" for i in inputs])

    batcher._bind()
    batcher._send = send
    return batcher, sent


def _request(value: str) -> Any:
    return trigger_pb2.TriggerWorkflowRequest(name="t_task", input=value)


async def test_calls_arriving_while_a_request_is_in_flight_form_the_next_one() -> None:
    batcher, sent = _batcher(lambda inputs: None)
    first = asyncio.create_task(batcher.trigger(_request("0"), "run task"))
    while not sent:  # the first call goes out alone, at once
        await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.trigger(_request(str(n)), "run task")) for n in range(1, 10)]
    ids = [await first, *[await r for r in rest]]
    assert ids == [f"id-{n}" for n in range(10)]
    assert sent == [["0"], [str(n) for n in range(1, 10)]]
    await batcher.close()


async def test_calls_made_together_share_one_request() -> None:
    batcher, sent = _batcher(lambda inputs: None)
    ids = await asyncio.gather(*(batcher.trigger(_request(str(n)), "run task") for n in range(10)))
    assert ids == [f"id-{n}" for n in range(10)]
    assert sent == [[str(n) for n in range(10)]]
    await batcher.close()


async def test_a_refused_run_is_split_out_and_fails_alone() -> None:
    def fail(inputs: list[str]) -> Exception | None:
        return _RpcError(grpc.StatusCode.INVALID_ARGUMENT) if "bad" in inputs else None

    batcher, sent = _batcher(fail)
    names = ["0", "1", "2", "bad", "4", "5"]
    outcome = await asyncio.gather(
        *(batcher.trigger(_request(n), f"run task {n!r}") for n in names), return_exceptions=True
    )
    assert outcome[:3] + outcome[4:] == ["id-0", "id-1", "id-2", "id-4", "id-5"]
    assert isinstance(outcome[3], SchedulerConnectionError)
    assert "run task 'bad'" in str(outcome[3]) and "INVALID_ARGUMENT" in str(outcome[3])
    assert isinstance(outcome[3].__cause__, grpc.RpcError)
    assert ["bad"] in sent
    await batcher.close()


async def test_a_transport_failure_reaches_every_caller_unsplit() -> None:
    batcher, sent = _batcher(lambda inputs: _RpcError(grpc.StatusCode.UNAVAILABLE))
    outcome = await asyncio.gather(
        *(batcher.trigger(_request(str(n)), f"run task {n}") for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, SchedulerConnectionError) for o in outcome)
    assert len({id(o) for o in outcome}) == 5, "each caller gets its own error"
    assert "run task 3" in str(outcome[3])
    assert sent == [["0", "1", "2", "3", "4"]]
    await batcher.close()


async def test_back_pressure_keeps_at_most_max_pending_calls() -> None:
    batcher, sent = _batcher(lambda inputs: None, max_pending=3)
    ids = await asyncio.gather(*(batcher.trigger(_request(str(n)), "run task") for n in range(10)))
    assert ids == [f"id-{n}" for n in range(10)]
    assert max(len(b) for b in sent) <= 3
    await batcher.close()


async def test_a_call_cancelled_before_its_request_is_not_sent() -> None:
    batcher, sent = _batcher(lambda inputs: None)
    first = asyncio.create_task(batcher.trigger(_request("a"), "run task"))
    await asyncio.sleep(0)
    second = asyncio.create_task(batcher.trigger(_request("b"), "run task"))
    third = asyncio.create_task(batcher.trigger(_request("c"), "run task"))
    await asyncio.sleep(0)
    second.cancel()
    assert await first == "id-a" and await third == "id-c"
    assert ["b"] not in sent and all("b" not in batch for batch in sent)
    await batcher.close()


def test_which_errors_split() -> None:
    assert splits(_RpcError(grpc.StatusCode.INVALID_ARGUMENT))
    assert splits(_RpcError(grpc.StatusCode.UNKNOWN))
    assert not splits(_RpcError(grpc.StatusCode.UNAVAILABLE))
    assert not splits(_RpcError(grpc.StatusCode.UNAUTHENTICATED))
    assert not splits(OSError("down"))


async def test_owlclaw_lines_stay_out_of_the_sdk_forwarder() -> None:
    """The SDK's real capture_logs, its sender replaced by a list."""
    logger = logging.getLogger(f"test-forward-{id(object())}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    got: list[str] = []

    class Sender(AsyncLogSender):
        def publish(self, record: Any) -> None:
            if isinstance(record, LogRecord):
                got.append(record.message)

    keep_own_logs_local(logger)
    keep_own_logs_local(logger)  # once is enough
    assert len(logger.handlers) == 1

    async def run() -> None:
        token = ctx_step_run_id.set("step-1")
        try:
            ours = logging.getLogger("owlclaw.scheduler.runs")
            ours.parent = logger
            logging.getLogger(f"{logger.name}.user").info("user line")
            ours.info("run started")
        finally:
            ctx_step_run_id.reset(token)
            logging.getLogger("owlclaw.scheduler.runs").parent = logging.getLogger("owlclaw.scheduler")

    await capture_logs(logger, Sender(event_client=None), run)()  # type: ignore[arg-type]
    assert got == ["user line"]


@pytest.fixture(autouse=True)
def _no_real_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel to nowhere (never used: the fake send replaces the stub's call)."""
    monkeypatch.setattr(
        "owlclaw.backends.hatchet.batch.new_conn",
        lambda config, aio: grpc.aio.insecure_channel("127.0.0.1:1"),
    )
