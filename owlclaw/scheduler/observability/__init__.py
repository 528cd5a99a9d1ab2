"""Logs, OpenTelemetry spans and Prometheus metrics for scheduling calls and runs.

Backends decorate their scheduling methods with ``traced_call()``, send
``current_metadata()`` (the trace context) with each task they create, and
run every attempt inside ``observe_attempt()`` (``owlclaw.scheduler.kit.
run_attempt`` does this).
Spans need the ``otel`` extra, metrics the ``metrics`` extra; without them
both are no-ops. See docs/observability.md.
"""

from owlclaw.scheduler.observability.attempts import observe_attempt
from owlclaw.scheduler.observability.metrics import serve_metrics
from owlclaw.scheduler.observability.tracing import TRACE_PREFIX, current_metadata, traced_call

__all__ = ["TRACE_PREFIX", "current_metadata", "observe_attempt", "serve_metrics", "traced_call"]
