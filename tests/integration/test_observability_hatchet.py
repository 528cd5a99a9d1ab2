"""Spans and metrics on the real engine, with the worker in another process:
a run's span (exported by the worker) is a child of the span of the call that
scheduled it (exported by this process), and the worker's --metrics-port
endpoint counts what it ran."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import socket
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from processes import WorkerProcess, worker_command

from owlclaw.scheduler import TaskState
from owlclaw.scheduler.polling import poll_until_blocking

pytestmark = pytest.mark.integration

SPANS_ENV = "OBS_TEST_SPANS"
APP = textwrap.dedent(
    f"""
    import json
    import os

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


    class JsonLines(SpanExporter):
        def __init__(self, path):
            self.path = path

        def export(self, spans):
            with open(self.path, "a", encoding="utf-8") as out:
                for s in spans:
                    row = {{
                        "name": s.name,
                        "trace_id": s.context.trace_id,
                        "span_id": s.context.span_id,
                        "parent_id": s.parent.span_id if s.parent else None,
                        "attributes": dict(s.attributes),
                    }}
                    out.write(json.dumps(row) + "\\n")
            return SpanExportResult.SUCCESS


    def register(scheduler):
        @scheduler.task(name="obs_echo")
        async def obs_echo(payload, ctx):
            return payload

        @scheduler.task(name="obs_fail")
        async def obs_fail(payload, ctx):
            raise ValueError("boom")

        return scheduler


    scheduler = None
    if os.environ.get("{SPANS_ENV}"):  # the worker process
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonLines(os.environ["{SPANS_ENV}"])))
        trace.set_tracer_provider(provider)
        from owlclaw.scheduler.registry import create_scheduler

        scheduler = register(create_scheduler())
    """
)


@pytest.fixture(scope="module")
def engine(hatchet_engine: Any) -> Any:
    return dataclasses.replace(hatchet_engine, namespace=f"owlclaw-obs-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    found = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(found))
    yield found
    found.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def worker(engine: Any, tmp_path: Path) -> Iterator[Any]:
    """The app above in a worker process serving /metrics and writing its spans to a file."""
    (tmp_path / "obs_hatchet_app.py").write_text(APP, encoding="utf-8")
    name = f"obs{uuid.uuid4().hex[:6]}"
    config_path = tmp_path / f"{name}.yaml"
    document = {"scheduler": {"backend": "hatchet", "hatchet": engine.settings(worker_name=name)}}
    config_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    spans, port = tmp_path / "spans.jsonl", free_port()
    env = engine.worker_env(config_path)
    env.update({SPANS_ENV: str(spans), "PYTHONPATH": str(tmp_path)})
    command = [*worker_command("obs_hatchet_app:scheduler"), "--metrics-port", str(port)]
    proc = WorkerProcess(command, env, tmp_path / f"{name}.log", cwd=tmp_path)
    try:
        proc.start().wait_active(engine, name)
        yield SimpleNamespace(spans=spans, metrics_url=f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.stop()


def app_module(directory: Path) -> Any:
    spec = importlib.util.spec_from_file_location("obs_hatchet_app_client", directory / "obs_hatchet_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_spans(path: Path, want: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """The worker's run spans for the task ids in ``want`` (waits for them)."""

    def spans() -> list[dict[str, Any]]:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        rows = [json.loads(line) for line in lines]
        return [r for r in rows if r["attributes"].get("owlclaw.task.id") in want]

    return poll_until_blocking(
        spans,
        lambda rows: {r["attributes"]["owlclaw.task.id"] for r in rows} == want,
        timeout=timeout,
        what=f"the worker's exported run spans for each of {sorted(want)} (spans seen)",
    )


def call_span(spans: list[ReadableSpan], name: str, task_id: str) -> ReadableSpan:
    [found] = [s for s in spans if s.name == name and (s.attributes or {}).get("owlclaw.task.id") == task_id]
    return found


def scrape(url: str, want: list[str], timeout: float = 30) -> str:

    def read() -> str:
        try:
            return str(urllib.request.urlopen(url, timeout=5).read().decode())
        except OSError:
            return ""

    return poll_until_blocking(
        read,
        lambda text: all(line in text for line in want),
        timeout=timeout,
        interval=0.5,
        what=f"{url} to show all of {want} (page read)",
    )


async def test_runs_are_children_of_their_calls_and_the_worker_counts_them(
    engine: Any, worker: Any, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    from owlclaw.backends.hatchet.backend import HatchetScheduler

    scheduler = app_module(tmp_path).register(HatchetScheduler(engine.config()))
    async with scheduler:
        with trace.get_tracer("test").start_as_current_span("agent turn"):
            run_id = await scheduler.run_task("obs_echo", {"n": 1})
            scheduled_id = await scheduler.schedule_task("obs_echo", {"n": 2}, delay_seconds=2)
            fail_id = await scheduler.run_task("obs_fail")
        pending_id = await scheduler.schedule_task("obs_echo", delay_seconds=3600)
        for task_id, state in ((run_id, "succeeded"), (scheduled_id, "succeeded"), (fail_id, "failed")):
            info = await scheduler.wait_for_task(task_id, timeout=60)
            assert info.state is TaskState(state), info

        mine = list(exporter.get_finished_spans())
        runs = await asyncio.to_thread(worker_spans, worker.spans, {run_id, scheduled_id, fail_id})
        for task_id, call_name in (
            (run_id, "run_task obs_echo"),
            (scheduled_id, "schedule_task obs_echo"),
            (fail_id, "run_task obs_fail"),
        ):
            call = call_span(mine, call_name, task_id)
            assert call.context is not None
            [run] = [r for r in runs if r["attributes"]["owlclaw.task.id"] == task_id]
            assert run["name"] == "run " + call_name.split()[1]
            assert run["trace_id"] == call.context.trace_id, (run, call)
            assert run["parent_id"] == call.context.span_id, (run, call)

        text = await asyncio.to_thread(
            scrape,
            worker.metrics_url,
            [
                'owlclaw_scheduler_runs_total{state="succeeded",task="obs_echo"} 2.0',
                'owlclaw_scheduler_runs_total{state="failed",task="obs_fail"} 1.0',
                'owlclaw_scheduler_attempts_total{outcome="failed",task="obs_fail"} 1.0',
                'owlclaw_scheduler_run_lateness_seconds_count{task="obs_echo"} 2.0',
                'owlclaw_scheduler_run_duration_seconds_count{task="obs_echo"} 2.0',
                'owlclaw_scheduler_pending_schedules{task="obs_echo"} 1.0',
            ],
        )
        assert 'owlclaw_scheduler_runs_total{state="failed",task="obs_echo"}' not in text
        assert await scheduler.cancel_task(pending_id)
