"""Logs, spans and metrics of the memory backend (owlclaw.scheduler.observability)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import ConfigError, NonRetryableError
from owlclaw.scheduler.observability import serve_metrics

START = datetime(2030, 1, 1, tzinfo=UTC)
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_owlclaw_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._owlclaw_test_exporter = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def virtual(**config: Any) -> MemoryScheduler:
    return MemoryScheduler(MemoryConfig(**config), clock=VirtualClock(start=START))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------
# spans


async def test_a_run_is_a_child_of_the_call_that_scheduled_it(spans: InMemorySpanExporter) -> None:
    s = virtual()

    @s.task(name="remind", retries=1)
    async def remind(payload: dict[str, Any], ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")

    async with s:
        await s.start_worker()
        task_id = await s.schedule_task("remind", {"user": "ada"}, delay_seconds=60)
        await s.advance(61)
        assert (await s.wait_for_task(task_id)).state is TaskState.SUCCEEDED

    [call] = named(spans, "schedule_task remind")
    assert call.kind is SpanKind.PRODUCER
    assert call.attributes is not None and call.attributes["owlclaw.task.id"] == task_id
    runs = sorted(named(spans, "run remind"), key=lambda r: r.attributes["owlclaw.task.attempt"])  # type: ignore[index]
    assert [r.attributes["owlclaw.task.attempt"] for r in runs] == [1, 2]  # type: ignore[index]
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        assert run.attributes is not None and run.attributes["owlclaw.task.id"] == task_id
        assert run.context is not None and call.context is not None
        assert run.context.trace_id == call.context.trace_id
        assert run.parent is not None and run.parent.span_id == call.context.span_id
    assert runs[0].status.status_code is StatusCode.ERROR
    assert runs[1].status.status_code is not StatusCode.ERROR


async def test_run_task_links_its_run_even_when_called_inside_another_span(
    spans: InMemorySpanExporter,
) -> None:
    s = virtual()

    @s.task(name="echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        return payload

    async with s:
        await s.start_worker()
        with trace.get_tracer("agent").start_as_current_span("agent turn") as turn:
            run_id = await s.run_task("echo", {"x": 1})
        await s.wait_for_task(run_id)

    [call] = named(spans, "run_task echo")
    [run] = named(spans, "run echo")
    assert call.parent is not None and call.parent.span_id == turn.get_span_context().span_id
    assert run.parent is not None and call.context is not None
    assert run.parent.span_id == call.context.span_id


async def test_a_cron_run_starts_its_own_trace(spans: InMemorySpanExporter) -> None:
    s = virtual()

    @s.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    async with s:
        await s.start_worker()
        cron_id = await s.add_cron("tick", "* * * * *")
        with trace.get_tracer("test").start_as_current_span("driving the clock"):
            await s.advance(61)
        await s.remove_cron(cron_id)

    [add] = named(spans, "add_cron tick")
    assert add.attributes is not None and add.attributes["owlclaw.cron.id"] == cron_id
    runs = named(spans, "run tick")
    assert runs and all(r.parent is None for r in runs)


async def test_cancel_task_has_a_span(spans: InMemorySpanExporter) -> None:
    s = virtual()

    @s.task(name="later")
    async def later(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    async with s:
        task_id = await s.schedule_task("later", delay_seconds=60)
        assert await s.cancel_task(task_id)
    [cancel] = named(spans, "cancel_task")
    assert cancel.attributes is not None and cancel.attributes["owlclaw.task.id"] == task_id


def test_without_the_extras_tasks_run_and_nothing_is_traced_or_served() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if the extras were not installed
        sys.modules["prometheus_client"] = None
        from owlclaw.backends.memory import MemoryScheduler, VirtualClock
        from owlclaw.scheduler.errors import NotSupportedError
        from owlclaw.scheduler.observability import current_metadata, serve_metrics

        s = MemoryScheduler(clock=VirtualClock())

        @s.task(name="echo")
        async def echo(payload, ctx):
            return payload

        async def main():
            async with s:
                await s.start_worker()
                info = await s.wait_for_task(await s.run_task("echo", {"x": 1}))
                assert info.result == {"x": 1}, info
                assert current_metadata() == {}

        asyncio.run(main())
        try:
            serve_metrics(0)
        except NotSupportedError as exc:
            print("hint:", exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'owlclaw-scheduler[metrics]'" in result.stdout


# --------------------------------------------------------------------------
# logs


async def test_one_structured_line_at_start_finish_and_failure(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()
    secret = "payload-" + uuid.uuid4().hex

    @s.task(name="flaky", retries=1)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("try again")

    caplog.set_level(logging.INFO, logger="owlclaw.scheduler.runs")
    async with s:
        await s.start_worker()
        task_id = await s.run_task("flaky", {"token": secret})
        await s.wait_for_task(task_id)

    records = [r for r in caplog.records if r.name == "owlclaw.scheduler.runs" and hasattr(r, "event")]
    events = [(r.event, r.attempt) for r in records]  # type: ignore[attr-defined]
    assert events == [("started", 1), ("failed", 1), ("started", 2), ("succeeded", 2)]
    for r in records:
        assert r.task_name == "flaky" and r.task_id == task_id  # type: ignore[attr-defined]
        assert f"task_id={task_id}" in r.getMessage()
    failed, succeeded = records[1], records[3]
    assert failed.levelno == logging.WARNING
    assert failed.error == "ValueError: try again" and failed.will_retry is True  # type: ignore[attr-defined]
    assert failed.duration_seconds >= 0 and succeeded.duration_seconds >= 0  # type: ignore[attr-defined]
    assert "duration_seconds=" in succeeded.getMessage()
    assert not [r for r in caplog.records if secret in r.getMessage()]


async def test_the_payload_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()
    marker = "payload-" + uuid.uuid4().hex

    @s.task(name="echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    caplog.set_level(logging.DEBUG, logger="owlclaw.scheduler.runs")
    async with s:
        await s.start_worker()
        await s.wait_for_task(await s.run_task("echo", {"note": marker}))
    [line] = [r for r in caplog.records if marker in r.getMessage()]
    assert line.levelno == logging.DEBUG and line.event == "payload"  # type: ignore[attr-defined]


async def test_a_final_failure_is_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()

    @s.task(name="broken", retries=3)
    async def broken(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise NonRetryableError("bad input")

    caplog.set_level(logging.INFO, logger="owlclaw.scheduler.runs")
    async with s:
        await s.start_worker()
        await s.wait_for_task(await s.run_task("broken"))
    [failed] = [r for r in caplog.records if getattr(r, "event", None) == "failed"]
    assert failed.levelno == logging.ERROR and failed.will_retry is False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# metrics


async def test_runs_attempts_and_durations_are_counted_by_task_and_outcome() -> None:
    s = virtual()
    ok, flaky, broken = unique("ok"), unique("flaky"), unique("broken")

    @s.task(name=ok)
    async def ok_task(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    @s.task(name=flaky, retries=2)
    async def flaky_task(payload: dict[str, Any], ctx: TaskContext) -> None:
        if ctx.attempt < 3:
            raise ValueError("not yet")

    @s.task(name=broken, retries=5)
    async def broken_task(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise NonRetryableError("no point retrying")

    async with s:
        await s.start_worker()
        for name in (ok, ok, flaky, broken):
            await s.wait_for_task(await s.run_task(name))

    runs, attempts = "owlclaw_scheduler_runs_total", "owlclaw_scheduler_attempts_total"
    assert sample(runs, task=ok, state="succeeded") == 2
    assert sample(runs, task=flaky, state="succeeded") == 1
    assert sample(runs, task=flaky, state="failed") == 0
    assert sample(attempts, task=flaky, outcome="failed") == 2
    assert sample(attempts, task=flaky, outcome="succeeded") == 1
    assert sample(runs, task=broken, state="failed") == 1
    assert sample(attempts, task=broken, outcome="failed") == 1
    assert sample("owlclaw_scheduler_run_duration_seconds_count", task=flaky) == 3


async def test_lateness_is_start_minus_due_time_on_the_scheduler_clock() -> None:
    s = virtual()
    name = unique("late")

    @s.task(name=name, retries=1)
    async def late(payload: dict[str, Any], ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("retry: not late again")

    async with s:
        task_id = await s.schedule_task(name, delay_seconds=10)
        await s.advance(40)  # due at +10s, no worker until +40s
        await s.start_worker()
        await s.wait_for_task(task_id)

    assert sample("owlclaw_scheduler_run_lateness_seconds_count", task=name) == 1
    assert sample("owlclaw_scheduler_run_lateness_seconds_sum", task=name) == 30
    assert sample("owlclaw_scheduler_run_lateness_seconds_bucket", task=name, le="10.0") == 0
    assert sample("owlclaw_scheduler_run_lateness_seconds_bucket", task=name, le="30.0") == 1


async def test_the_endpoint_serves_counters_and_pending_schedules() -> None:
    s = virtual()
    name = unique("served")

    @s.task(name=name)
    async def served(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    server = serve_metrics(0, s)
    try:
        assert server.host == "127.0.0.1"
        async with s:
            await s.start_worker()
            await s.wait_for_task(await s.run_task(name))
            for delay in (3600, 7200):
                await s.schedule_task(name, delay_seconds=delay)
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(server.url, timeout=10).read())
    finally:
        server.close()
    text = body.decode()
    assert f'owlclaw_scheduler_runs_total{{state="succeeded",task="{name}"}} 1.0' in text
    assert f'owlclaw_scheduler_pending_schedules{{task="{name}"}} 2.0' in text
    assert f'owlclaw_scheduler_run_duration_seconds_count{{task="{name}"}} 1.0' in text


def test_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="65535"):
        serve_metrics(70000)
    server = serve_metrics(0)
    try:
        with pytest.raises(ConfigError, match="pick a free --metrics-port"):
            serve_metrics(server.port)
    finally:
        server.close()
