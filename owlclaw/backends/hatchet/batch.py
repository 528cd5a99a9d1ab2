"""Batched triggers: concurrent ``run_task`` calls gathered into the engine's
``BulkTriggerWorkflow`` requests, over an asyncio gRPC channel.

One request is in flight at a time. The first call of an idle batcher goes
out at once; calls that arrive while a request is in flight form the next one
(up to ``MAX_BATCH`` runs or the gRPC message limit). Each caller gets its own
run id, or its own error: a request the engine refuses as a whole (it checks
every run before it creates any) is split in halves until each refusal
reaches the call it belongs to. A transport failure is no one call's fault:
every caller of that request gets it, unsplit. ``max_pending`` bounds the
calls queued or in flight; past it a caller waits (back-pressure).

The SDK's own ``aio_run`` sends one blocking gRPC call on the event loop's
default thread pool per run (docs/hatchet.md, "Batched triggers").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import grpc
from hatchet_sdk.clients.rest.tenacity_utils import tenacity_retry
from hatchet_sdk.config import ClientConfig
from hatchet_sdk.connection import new_conn
from hatchet_sdk.contracts import workflows_pb2
from hatchet_sdk.contracts.workflows_pb2_grpc import WorkflowServiceStub
from hatchet_sdk.types.trigger import TriggerWorkflowOptions
from hatchet_sdk.utils.api_auth import create_authorization_header

from owlclaw.backends.hatchet.errors import sdk_error

__all__ = ["MAX_BATCH", "REQUEST_TIMEOUT_SECONDS", "TriggerBatcher", "run_request", "splits"]

MAX_BATCH = 1000  # the SDK's MAX_BULK_WORKFLOW_RUN_BATCH_SIZE
#: Longest one bulk request may take (a hung connection fails its callers, not stalls them).
REQUEST_TIMEOUT_SECONDS = 60.0
# refusals that are about the whole request, not one run in it: no split
_WHOLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def run_request(
    client: Any, task_name: str, payload: str, metadata: dict[str, str], priority: int | None
) -> Any:
    """The SDK's trigger request for one run, built as its ``aio_run`` builds it.
    Built in the caller's context: a run started inside a task is its child."""
    options = TriggerWorkflowOptions(additional_metadata=metadata, priority=priority)
    return client._client.admin._create_workflow_run_request(task_name, payload, options)


def splits(exc: BaseException) -> bool:
    """Whether a failed bulk request may hold good runs beside a bad one."""
    if not isinstance(exc, grpc.RpcError):
        return False
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return code not in _WHOLE


@dataclass
class _Call:
    request: Any  # trigger_pb2.TriggerWorkflowRequest
    what: str  # "run task 'x'", for its error message
    future: asyncio.Future[str]


class TriggerBatcher:
    """Gathers trigger requests of one event loop into bulk requests."""

    def __init__(self, config: ClientConfig, host: str, max_pending: int) -> None:
        self._config = config
        self._host = host
        self._max_pending = max_pending
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: grpc.aio.Channel | None = None
        self._send: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._queue: deque[_Call] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.requests = 0  # bulk requests sent, for tests and benchmarks

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The channel belongs to the loop it was made in: one per loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._channel = new_conn(self._config, aio=True)
            stub = WorkflowServiceStub(self._channel)
            header = create_authorization_header(self._config.token)

            async def send(request: Any) -> Any:
                return await stub.BulkTriggerWorkflow(
                    request, metadata=header, timeout=REQUEST_TIMEOUT_SECONDS
                )

            # the SDK retries a single trigger the same way
            self._send = tenacity_retry(send, self._config.tenacity)
            self._slots = asyncio.Semaphore(self._max_pending)
            self._queue = deque()
            self._flusher = None
        return loop

    async def trigger(self, request: Any, what: str) -> str:
        """The run id of ``request`` once its bulk request is answered."""
        loop = self._bind()
        assert self._slots is not None
        async with self._slots:  # back-pressure: at most max_pending calls queued or in flight
            call = _Call(request, what, loop.create_future())
            self._queue.append(call)
            if self._flusher is None or self._flusher.done():
                self._flusher = loop.create_task(self._flush())
            return await call.future

    async def _flush(self) -> None:
        """Send what is queued, one request at a time, until the queue is empty."""
        while self._queue:
            batch: list[_Call] = []
            size = 0
            limit = self._config.grpc_max_send_message_length
            while self._queue and len(batch) < MAX_BATCH:
                call = self._queue[0]
                if batch and size + call.request.ByteSize() > limit:
                    break
                self._queue.popleft()
                if not call.future.done():  # a caller cancelled before sending is not sent
                    batch.append(call)
                    size += call.request.ByteSize()
            if batch:
                await self._deliver(batch)

    async def _deliver(self, batch: list[_Call]) -> None:
        self.requests += 1
        try:
            request = workflows_pb2.BulkTriggerWorkflowRequest(workflows=[c.request for c in batch])
            response = await self._send(request)
        except Exception as exc:  # noqa: BLE001 - every caller gets its own error
            if len(batch) > 1 and splits(exc):
                half = len(batch) // 2
                await self._deliver(batch[:half])
                await self._deliver(batch[half:])
                return
            for call in batch:
                _fail(call, exc, self._host)
            return
        ids = list(response.workflow_run_ids)
        for call, run_id in zip(batch, ids, strict=False):
            if not call.future.done():
                call.future.set_result(str(run_id))
        for call in batch[len(ids) :]:  # never seen: the engine answers one id per run
            if not call.future.done():
                call.future.set_exception(RuntimeError(f"Hatchet returned no run id to {call.what}"))

    async def close(self) -> None:
        """Send what is queued (``disconnect`` flushes), then close the channel."""
        flusher, channel = self._flusher, self._channel
        self._flusher = None
        if flusher is not None and asyncio.get_running_loop() is self._loop:
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)
        self._loop = None
        self._channel = None
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()


def _fail(call: _Call, exc: BaseException, host: str) -> None:
    if call.future.done():
        return
    mapped = sdk_error(exc, host, call.what)
    if mapped is None:
        call.future.set_exception(exc)
        return
    error, keep_cause = mapped
    error.__cause__ = exc if keep_cause else None
    error.__suppress_context__ = True
    call.future.set_exception(error)
