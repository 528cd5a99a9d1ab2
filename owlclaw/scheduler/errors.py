"""Errors raised by owlclaw's scheduler.

Every error is a ``SchedulerError``; most also inherit the builtin a caller
would naturally catch, so ``except ValueError`` keeps working::

    SchedulerError
    ├── ConfigError (ValueError)            bad owlclaw.yaml, env or backend settings
    ├── BackendNotFoundError (LookupError)  unknown backend name or missing extra
    ├── SchedulerConnectionError (ConnectionError)
    │                                       engine unreachable, token refused
    ├── TaskNotRegisteredError (LookupError)
    │                                       no task of that name
    ├── TaskDefinitionError (ValueError)    bad @task arguments (priority, retries...)
    ├── InvalidCronError (ValueError)       cron expression the engine would reject
    ├── InvalidScheduleError (ValueError)   delay <= 0, naive datetime, both/neither
    ├── TaskNotFoundError (LookupError)     unknown task or cron id
    ├── PayloadError (TypeError)            payload or result that is not JSON
    ├── NotSupportedError                   operation this backend or task cannot do
    ├── NonRetryableError                   raised by a task: fail now, skip the retries left
    ├── WaitTimeoutError (TimeoutError)     wait_for_task gave up
    └── RunawayTaskError (RuntimeError)     a task keeps re-queueing itself at one instant
"""

from __future__ import annotations

__all__ = [
    "BackendNotFoundError",
    "ConfigError",
    "InvalidCronError",
    "InvalidScheduleError",
    "NonRetryableError",
    "NotSupportedError",
    "PayloadError",
    "RunawayTaskError",
    "SchedulerConnectionError",
    "SchedulerError",
    "TaskDefinitionError",
    "TaskNotFoundError",
    "TaskNotRegisteredError",
    "WaitTimeoutError",
    "describe_error",
]


class SchedulerError(Exception):
    """Root of every error raised by owlclaw's scheduler."""


class ConfigError(SchedulerError, ValueError):
    """The configuration is invalid; the message names the file, key and fix."""


class BackendNotFoundError(SchedulerError, LookupError):
    """No backend of that name is installed, or its extra is missing."""


class SchedulerConnectionError(SchedulerError, ConnectionError):
    """The backend's engine could not be reached or refused the credentials."""


class TaskNotRegisteredError(SchedulerError, LookupError):
    """No task of that name was registered with ``@scheduler.task``."""


class TaskDefinitionError(SchedulerError, ValueError):
    """A ``@scheduler.task(...)`` declaration is invalid."""


class InvalidCronError(SchedulerError, ValueError):
    """A cron expression is not valid."""


class InvalidScheduleError(SchedulerError, ValueError):
    """``delay_seconds``/``at`` are missing, both given, not positive or naive."""


class TaskNotFoundError(SchedulerError, LookupError):
    """No task run, schedule or cron has that id."""


class PayloadError(SchedulerError, TypeError):
    """A payload or result cannot be carried as JSON."""


class NotSupportedError(SchedulerError):
    """The backend, or this kind of task, cannot do what was asked."""


class NonRetryableError(SchedulerError):
    """Raise it in a task to fail the run at once, whatever retries are left."""


class WaitTimeoutError(SchedulerError, TimeoutError):
    """``wait_for_task`` reached its timeout before the task finished."""


class RunawayTaskError(SchedulerError, RuntimeError):
    """A task keeps queueing runs of itself (or waking from ``ctx.sleep``) at
    one instant, so ``advance()``/``run_until_idle()`` could never move on."""


def describe_error(exc: BaseException) -> str:
    """An error as runs report it: ``"ExceptionType: message"``."""
    return f"{type(exc).__name__}: {exc}"
