"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (extra ``otel``).

A scheduling call gets a PRODUCER span (``traced_call``); its W3C trace
context, from ``current_metadata()`` (keys prefixed ``owlclaw_otel_``), travels with
the task: in Hatchet's additional metadata, in the memory backend's run
record. Each attempt gets a CONSUMER span whose parent is that context, so a
run is a child of the call that scheduled it, across processes. Without the
package nothing is imported and no span is made.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["TRACE_PREFIX", "current_metadata", "recording", "run_span", "traced_call"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

TRACE_PREFIX = "owlclaw_otel_"  # metadata key = prefix + propagator field: owlclaw_otel_traceparent
TRACER_NAME = "owlclaw.scheduler"


@functools.cache
def _otel() -> ModuleType | None:
    try:
        import opentelemetry.trace  # noqa: F401
        from opentelemetry import propagate
    except ImportError:
        return None
    module: ModuleType = propagate  # Any when mypy runs without the extra
    return module


@functools.cache
def _trace_api() -> Any:
    """``opentelemetry.trace`` when installed, else None; the provider from
    ``OTEL_PYTHON_TRACER_PROVIDER`` is loaded here, once."""
    if _otel() is None:
        return None
    from opentelemetry import trace

    if "OTEL_PYTHON_TRACER_PROVIDER" in os.environ:
        trace.get_tracer_provider()
    return trace


def recording() -> bool:
    """Whether spans are recorded: a tracer provider has been set (a cheap check, per call)."""
    api = _trace_api()
    return api is not None and api._TRACER_PROVIDER is not None


def _context_empty() -> bool:
    """Nothing to propagate: no span, no baggage in the current context."""
    return not _get_context()()


@functools.cache
def _get_context() -> Any:
    from opentelemetry import context

    return context.get_current


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


def traced_call(operation: str) -> Callable[[F], F]:
    """Decorate a backend's scheduling method with a span named
    ``"<operation> <task_name>"``; inside it ``current_metadata()`` is the
    context to send with the task. The first argument names the task (the
    task id for ``cancel_task``); the returned id becomes an attribute."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        async def wrapper(self: Any, first: Any, *args: Any, **kwargs: Any) -> Any:
            if not recording():
                return await method(self, first, *args, **kwargs)
            from opentelemetry.trace import SpanKind

            attributes = {"owlclaw.backend": str(getattr(self, "backend_name", "unknown"))}
            by_id = operation == "cancel_task"
            attributes["owlclaw.task.id" if by_id else "owlclaw.task.name"] = str(first)
            name = operation if by_id else f"{operation} {first}"
            with _tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes) as span:
                result = await method(self, first, *args, **kwargs)
                if isinstance(result, str):
                    span.set_attribute(
                        "owlclaw.cron.id" if operation == "add_cron" else "owlclaw.task.id", result
                    )
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


def current_metadata() -> dict[str, str]:
    """The current trace context as metadata for a task (empty without OTel)."""
    propagate = _otel()
    if propagate is None or (not recording() and _context_empty()):
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {TRACE_PREFIX + k: v for k, v in carrier.items()}


#: What ``run_span`` returns when nothing is traced.
NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def run_span(
    task_name: str, task_id: str, attempt: int, scheduler: Any, metadata: Mapping[str, Any] | None
) -> contextlib.AbstractContextManager[Any]:
    """A span named ``"run <task_name>"`` around one attempt, child of the
    context in ``metadata`` (a root span without one: crons); ``scheduler``
    gives the span its backend's name."""
    propagate = _otel()
    if propagate is None or (not metadata and not recording()):
        return NO_SPAN
    carrier = {
        k[len(TRACE_PREFIX) :]: str(v)
        for k, v in (metadata or {}).items()
        if isinstance(k, str) and k.startswith(TRACE_PREFIX)
    }
    if propagate is None or (not carrier and not recording()):
        return NO_SPAN
    backend = str(getattr(scheduler, "backend_name", "unknown"))
    return _run_span(propagate, carrier, task_name, task_id, attempt, backend)


@contextlib.contextmanager
def _run_span(
    propagate: Any, carrier: dict[str, str], task_name: str, task_id: str, attempt: int, backend: str
) -> Iterator[Any]:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(
        carrier, context=Context()
    )  # empty: a new trace, not the caller's current span
    attributes = {
        "owlclaw.backend": backend,
        "owlclaw.task.name": task_name,
        "owlclaw.task.id": task_id,
        "owlclaw.task.attempt": attempt,
    }
    with _tracer().start_as_current_span(
        f"run {task_name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
