"""What a backend author builds on: see docs/backends.md.

* ``BaseScheduler`` (``kit.base``): the public methods of the ``Scheduler``
  protocol, written once over a few hooks a backend implements.
* ``run_attempt`` (``kit.attempts``): one attempt of a task, run, timed out,
  logged and decided (retry after how long, or final with ``on_failure``
  called), returned as an ``AttemptOutcome``.
* ``make_options`` (``kit.declare``): the checks of ``@scheduler.task(...)``,
  whose keyword arguments are ``TaskArgs``.
* ``check_payload`` and the other JSON rules (``kit.payloads``).
* ``serve_until_signal`` (``kit.signals``): a worker process's main loop.
* ``SyncExecutor``, ``hold_sync_threads`` / ``release_sync_threads``, ``BlockingScheduler`` (``kit.sync``):
  sync task functions on the worker's own threads, one per slot, and
  ``ctx.sync_scheduler``.
"""

from owlclaw.scheduler.errors import describe_error
from owlclaw.scheduler.kit.attempts import (
    AttemptOutcome,
    execute_attempt,
    failed_outcome,
    log_attempt_failure,
    make_context,
    run_attempt,
    run_on_failure,
    timeout_error,
)
from owlclaw.scheduler.kit.base import NOT_CONNECTED, BaseScheduler
from owlclaw.scheduler.kit.declare import TaskArgs, make_options
from owlclaw.scheduler.kit.payloads import (
    MAX_PAYLOAD_BYTES,
    check_payload,
    copy_json,
    dump_json,
    json_roundtrip,
    resolve_due_time,
    run_priority,
)
from owlclaw.scheduler.kit.signals import serve_until_signal
from owlclaw.scheduler.kit.sync import (
    SYNC_CALL_TIMEOUT,
    BlockingScheduler,
    SyncExecutor,
    TaskExit,
    hold_sync_threads,
    release_sync_threads,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "NOT_CONNECTED",
    "SYNC_CALL_TIMEOUT",
    "AttemptOutcome",
    "BaseScheduler",
    "BlockingScheduler",
    "SyncExecutor",
    "TaskArgs",
    "TaskExit",
    "check_payload",
    "copy_json",
    "describe_error",
    "dump_json",
    "execute_attempt",
    "failed_outcome",
    "hold_sync_threads",
    "json_roundtrip",
    "log_attempt_failure",
    "make_context",
    "make_options",
    "release_sync_threads",
    "resolve_due_time",
    "run_attempt",
    "run_on_failure",
    "run_priority",
    "serve_until_signal",
    "timeout_error",
]
