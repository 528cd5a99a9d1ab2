"""The Hatchet backend: every owlclaw task is a Hatchet task.

IDs. ``run_task`` returns the Hatchet workflow-run id. ``schedule_task``
returns an id of our own (a UUID) that travels with the schedule, and with the
run the engine creates when it fires, as the additional metadata key
``owlclaw_task_id``: the engine deletes a fired one-off schedule and gives its
run a new id with no link back, so the metadata is the only durable link. A
cron-triggered run is known by its Hatchet run id. Inside a run,
``ctx.task_id`` is the same id the caller got.

Workers. The SDK's worker needs the main thread and an event loop of its own
(it installs signal handlers and spawns processes), so a worker runs with
``run_worker()`` (``owlclaw-scheduler worker APP``); ``start_worker()``
raises ``NotSupportedError``.

Differences from the in-memory backend, and their reasons:

* The engine deletes a cancelled schedule and keeps no trace of it, so
  ``cancel_task`` leaves a tombstone: a run of the ``owlclaw-cancelled``
  workflow (no worker serves it), cancelled at once, carrying the schedule's
  id, task name, due time and payload. Any process then reports the schedule
  CANCELLED. If writing the tombstone fails, only this process remembers.
  ``list_tasks()`` skips tombstones: like a pending schedule, a cancelled
  one never became a run.
* Look-ups and ``list_tasks`` search runs of the last 6 days (the engine's
  run listing is windowed; longer windows are slow).
* The engine lists every namespace; rows are filtered by the ``<namespace>_``
  prefix, so a namespace must not equal another one plus ``_suffix``
  (``prod`` and ``prod_eu`` would see each other's runs in listings).
* Between a failed attempt and its retry the engine briefly reports the run
  FAILED; it is reported QUEUED when the task is registered in this process
  (the retry count is needed to tell), else as the engine says.
* Hatchet requires an execution timeout: a task without ``timeout`` gets
  24 hours. ``backoff_max_seconds`` is rounded up to whole seconds.
* A durable sleep survives a worker crash, but the engine notices a dead
  worker only after its heartbeat times out, so the run wakes that much late
  (about 20 s with hatchet-lite v0.105.0) when its worker died.
* ``embedded`` mode starts the locally built engine in this process (and in
  ``run_worker()``'s process); it suits one process, not a fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import grpc
import urllib3
from hatchet_sdk import ClientConfig, ClientTLSConfig, Context, DurableContext, Hatchet, Priority
from hatchet_sdk.clients.rest.exceptions import ApiException, NotFoundException
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.exceptions import NonRetryableException, TaskRunError
from hatchet_sdk.types.concurrency import ConcurrencyExpression, ConcurrencyLimitStrategy
from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions
from pydantic import ValidationError

from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.scheduler.base import (
    BaseScheduler,
    check_payload,
    describe_error,
    dump_json,
    execute_attempt,
    json_roundtrip,
    log_attempt_failure,
    resolve_due_time,
    run_on_failure,
    run_priority,
)
from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.cron import next_fire_time, normalize_cron
from owlclaw.scheduler.doctor import Finding
from owlclaw.scheduler.errors import (
    InvalidCronError,
    NotSupportedError,
    SchedulerConnectionError,
    SchedulerError,
    TaskDefinitionError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from owlclaw.scheduler.models import CronInfo, TaskContext, TaskFailure, TaskInfo, TaskOptions, TaskState
from owlclaw.scheduler.observability import current_metadata, traced_call
from owlclaw.scheduler.protocol import Capabilities

__all__ = ["HatchetScheduler", "map_sdk_errors"]

log = logging.getLogger("owlclaw.scheduler.hatchet")

ID_KEY = "owlclaw_task_id"  # our id, in a schedule's (and its run's) additional metadata
DUE_KEY = "owlclaw_due"  # the due time of a schedule, ISO 8601 UTC
QUEUED_KEY = "owlclaw_queued_at"  # when run_task was called, ISO 8601 UTC: the lateness metric's start
RESULT_KEY = "owlclaw_result"  # Hatchet wants dict outputs: results are wrapped in this key
TASK_KEY = "owlclaw_task_name"  # on a tombstone: the task whose schedule was cancelled
TIMEOUT_GRACE = 5  # seconds the engine waits past a task's own timeout before it steps in
TOMBSTONE = "owlclaw-cancelled"  # a workflow no worker serves: its cancelled runs record cancelled schedules
DECLARED_CRON_NAME = "owlclaw-declared"  # the name of a cron declared with @task(cron=...)
DEFAULT_TIMEOUT = timedelta(hours=24)  # Hatchet's default is 60 s; owlclaw's is none
LIST_WINDOW = timedelta(days=6)  # how far back list_tasks and id look-ups search runs
POLL_SECONDS = 0.2
CANCEL_RETRIES = 50  # x POLL_SECONDS / 2: how long cancel_task waits for the engine's listings
CANCEL_CONFIRM_SECONDS = 10.0  # how long cancel_task waits for a cancelled run to stop
CANCEL_SETTLE_SECONDS = 2.0  # a started run reading CANCELLED is read again this long after the cancel
ENGINE_REQUEUE_ERROR = "Could not send task to worker"  # the dispatcher's message before it retries
ENGINE_REQUEUE_WINDOW = 120.0  # seconds such a failure reads QUEUED: the retries' backoff and a queue poll
FIRE_WINDOW = timedelta(seconds=1)  # a schedule due this soon (or overdue) may fire while it is deleted
FIRED_WATCH_SECONDS = 3.0  # how long a deleted schedule's run may take to be listed

_STATES = {
    V1TaskStatus.QUEUED: TaskState.QUEUED,
    V1TaskStatus.RUNNING: TaskState.RUNNING,
    V1TaskStatus.COMPLETED: TaskState.SUCCEEDED,
    V1TaskStatus.FAILED: TaskState.FAILED,
    V1TaskStatus.CANCELLED: TaskState.CANCELLED,
}
_SDK_STATUSES = {v: k for k, v in _STATES.items()}


# --------------------------------------------------------------------------
# errors


def _is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, NotFoundException):
        return True
    # a malformed id is a 400 ("invalid uuid"): for us it names nothing
    return isinstance(exc, ApiException) and exc.status in (400, 404)


@contextlib.contextmanager
def map_sdk_errors(host: str, what: str) -> Iterator[None]:
    """Translate SDK and transport errors into owlclaw's; the original stays ``__cause__``.

    The token is never part of the message: only the host, what failed, the
    cause's type and status, and a hint.
    """
    try:
        yield
    except SchedulerError:
        raise
    except ApiException as exc:
        if exc.status in (401, 403):
            raise SchedulerConnectionError(
                f"Hatchet at {host} refused the API token while trying to {what} "
                f"(HTTP {exc.status}); check scheduler.hatchet.api_token / HATCHET_CLIENT_TOKEN "
                "belongs to this server and tenant"
            ) from exc
        raise SchedulerConnectionError(
            f"Hatchet at {host} failed to {what}: HTTP {exc.status} {exc.reason or ''}".rstrip()
        ) from exc
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            hint = "the API token was refused; check scheduler.hatchet.api_token / HATCHET_CLIENT_TOKEN"
        else:
            hint = "is the engine running, and are host_port and tls_strategy right?"
        raise SchedulerConnectionError(
            f"cannot {what} on Hatchet at {host}: gRPC {getattr(code, 'name', code)}; {hint}"
        ) from exc
    except (OSError, TimeoutError, urllib3.exceptions.HTTPError) as exc:
        raise SchedulerConnectionError(
            f"cannot reach Hatchet at {host} to {what}: {type(exc).__name__}: {exc}; "
            "is the engine running and server_url right?"
        ) from exc


def _error_text(serialized: str | None) -> str | None:
    """``Type: message`` from the engine's stored error (which adds a traceback)."""
    if not serialized:
        return None
    err = TaskRunError.deserialize(serialized)
    if err.exc_type == NonRetryableException.__name__:  # owlclaw's wrapper put "Type: message" in it
        return err.exc or serialized
    if err.exc_type and err.exc_type != "HatchetError":
        return f"{err.exc_type}: {err.exc}"
    return err.exc or serialized


def _payload_of(raw: Any) -> dict[str, Any]:
    """The task input from a run's stored input (the engine wraps it with trigger data)."""
    if not isinstance(raw, dict):
        return {}
    if "input" in raw and ("triggered_by" in raw or "parents" in raw):
        inner = raw["input"]
        return dict(inner) if isinstance(inner, dict) else {}
    return dict(raw)


def _attempts(
    state: TaskState, retry_count: int, started: datetime | None, retrying: bool, error: str | None
) -> int:
    """Attempts begun. The engine counts retries, and clears ``started_at``
    while a retry waits in the queue. Its read side can also record an
    attempt's failure before its start (3 final reads in 96 left ``started_at``
    unset): an error from the task's code means the attempt began."""
    if state is TaskState.QUEUED and not retrying:
        return retry_count  # the next attempt has not started
    failed_in_code = state is TaskState.FAILED and bool(error) and ENGINE_REQUEUE_ERROR not in (error or "")
    return retry_count + 1 if started is not None or failed_in_code else retry_count


def _engine_requeued(error: str | None, failed_at: datetime | None) -> bool:
    """The engine's dispatcher could not hand the run to a worker (its stream
    was gone, as just after an engine or database restart). The engine records
    FAILED, then retries the dispatch itself, SERVER_MAX_INTERNAL_RETRY_COUNT
    times (10 by default). It reads FAILED until a worker takes the run, which
    can be a minute; past ENGINE_REQUEUE_WINDOW the failure is taken as final."""
    if not error or ENGINE_REQUEUE_ERROR not in error:
        return False
    return failed_at is None or datetime.now(UTC) - failed_at < timedelta(seconds=ENGINE_REQUEUE_WINDOW)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.year == 1:  # the engine's "never" is Go's zero time
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _FlagEvent(threading.Event):
    """A ``threading.Event`` that reads the SDK context's cancellation flag."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self._ctx = ctx

    def is_set(self) -> bool:
        return bool(self._ctx.is_cancelled) or super().is_set()


@dataclass
class _Local:
    """What this process knows of a run or schedule it created."""

    task_name: str
    payload: dict[str, Any]
    created_at: datetime
    due: datetime | None  # schedules only


# --------------------------------------------------------------------------
# the scheduler


class HatchetScheduler(BaseScheduler):
    """Runs owlclaw tasks on a Hatchet engine (see the module docstring for ids)."""

    backend_name = "hatchet"
    capabilities = Capabilities(in_process=False, virtual_time=False, diagnose=True, start_worker=False)

    def __init__(self, config: HatchetConfig | None = None) -> None:
        super().__init__()
        self.config = config or HatchetConfig.model_validate({})
        self._client: Hatchet | None = None
        self._standalones: dict[str, Any] = {}
        self._workflow_ids: dict[str, str] = {}
        self._foreign_workflows: set[str] = set()
        self._tombstone: Any = None
        self._local: dict[str, _Local] = {}
        self._cancelled: dict[str, TaskInfo] = {}
        self._engine: Any = None  # LocalEngine in embedded mode
        self._host = self.config.host_port or "<embedded engine>"

    @classmethod
    def from_config(cls, config: HatchetConfig) -> HatchetScheduler:
        return cls(config)

    def __repr__(self) -> str:
        return (
            f"HatchetScheduler(host={self._host!r}, namespace={self.namespace!r}, tasks={len(self._tasks)})"
        )

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def _prefix(self) -> str:
        ns = self.config.namespace.lower()
        return ns if ns.endswith("_") else ns + "_"

    # client and workflows

    def _build_client(self) -> Hatchet:
        cfg = self.config
        token = cfg.api_token.get_secret_value() if cfg.api_token is not None else ""
        host_port = cfg.host_port or ""
        server_url = cfg.server_url
        tls = cfg.effective_tls_strategy
        if cfg.mode == "embedded":
            from owlclaw.backends.hatchet.local.engine import LocalEngine

            if self._engine is None:
                assert cfg.database_url is not None
                self._engine = LocalEngine(cfg.database_url, bin_dir=cfg.binary_path)
            conn = self._engine.start()
            token, host_port, server_url, tls = conn.token, conn.host_port, conn.server_url, "none"
        if server_url is None:
            host = host_port.rpartition(":")[0] or "localhost"
            server_url = f"{'http' if tls == 'none' else 'https'}://{host}"
        self._host = f"{host_port} (API {server_url})"
        extra: dict[str, Any] = {}
        if tls != "none" and urlsplit(server_url).hostname:
            extra["server_name"] = host_port.rpartition(":")[0]
        try:
            client_config = ClientConfig(
                token=token,
                host_port=host_port,
                server_url=server_url,
                namespace=cfg.namespace,
                tls_config=ClientTLSConfig(strategy=tls, **extra),
            )
            client = Hatchet(config=client_config)
        except Exception as exc:  # noqa: BLE001 - the SDK validates the token eagerly
            raise SchedulerConnectionError(
                f"cannot configure the Hatchet client for {host_port}: {type(exc).__name__} "
                "(is api_token a Hatchet API token, i.e. a JWT from `hatchet-admin token create` "
                "or the dashboard?)"
            ) from None
        self._client = client
        self._standalones = {name: self._define(client, o) for name, o in self._tasks.items()}
        self._tombstone = client.task(name=TOMBSTONE, input_validator=dict[str, Any])(_never_runs)
        return client

    def _check_task(self, options: TaskOptions) -> None:
        if options.name == TOMBSTONE:
            raise TaskDefinitionError(f"{TOMBSTONE!r} is reserved by the Hatchet backend; pick another name")
        if options.name.lower().startswith(self._prefix):
            bare = options.name[len(self._prefix) :]
            raise TaskDefinitionError(
                f"task name {options.name!r} starts with this namespace's prefix {self._prefix!r}, which "
                f"the Hatchet SDK then does not add again; drop the prefix, e.g. {bare!r}"
            )

    def _task_added(self, options: TaskOptions) -> None:
        if self._client is not None:
            self._standalones[options.name] = self._define(self._client, options)

    def _define(self, client: Hatchet, options: TaskOptions) -> Any:
        scheduler = self

        async def owlclaw_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
            return await scheduler._execute(options, payload, ctx)

        kwargs: dict[str, Any] = {
            "name": options.name,
            "input_validator": dict[str, Any],
            "retries": options.retries,
            "execution_timeout": (
                timedelta(seconds=math.ceil(options.timeout) + TIMEOUT_GRACE)
                if options.timeout is not None
                else DEFAULT_TIMEOUT
            ),
            "default_priority": Priority(options.priority),
            # the SDK's 5 minutes would fail runs queued through a longer worker outage
            "schedule_timeout": timedelta(seconds=self.config.schedule_timeout_seconds),
            **_backoff(options),
            "concurrency": _concurrency(options),
        }
        # the SDK's overloads cannot be matched through **kwargs
        decorate: Any = client.durable_task(**kwargs) if options.durable else client.task(**kwargs)
        return decorate(owlclaw_task)

    async def _execute(self, options: TaskOptions, payload: Any, ctx: Context) -> dict[str, Any]:
        metadata = ctx.additional_metadata or {}
        task_id = str(metadata.get(ID_KEY) or ctx.workflow_run_id)
        attempt = int(ctx.attempt_number)
        durable_sleep = None
        if options.durable and isinstance(ctx, DurableContext):
            durable_ctx = ctx

            async def durable_sleep(seconds: float) -> None:
                await durable_ctx.aio_sleep_for(timedelta(seconds=max(seconds, 0.0)))

        task_ctx = TaskContext(
            task_id=task_id,
            task_name=options.name,
            attempt=attempt,
            scheduler=self,
            durable_sleep=durable_sleep,
            cancel_event=_FlagEvent(ctx),
        )
        attempt_run = execute_attempt(
            options, dict(payload or {}), task_ctx, trace=metadata, lateness=_lateness(metadata, attempt)
        )
        try:
            # the timeout is kept here, in the worker, so that a timed-out attempt
            # is an ordinary failure (retries, on_failure); the engine's execution
            # timeout is only a backstop a few seconds later
            async with asyncio.timeout(options.timeout) as deadline:
                result = await attempt_run
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError) and deadline.expired()
            if timed_out:
                error = f"TimeoutError: task {options.name!r} exceeded its timeout of {options.timeout:g}s"
                retryable = True
            else:
                error = describe_error(exc)
                retryable = options.should_retry(exc)
            final = attempt > options.retries or not retryable
            log_attempt_failure(options, task_id, attempt, error, final=final)
            if final:
                # in the worker, before the engine records the failure: a run is
                # reported FAILED only once its on_failure has returned
                failure = TaskFailure(
                    options.name, task_id, json_roundtrip(payload or {}, "payload"), error, attempt
                )
                await run_on_failure(options, failure)
            if not retryable and attempt <= options.retries:
                raise NonRetryableException(error) from exc
            if timed_out:
                raise TimeoutError(error.removeprefix("TimeoutError: ")) from None
            raise
        return {RESULT_KEY: result}

    def _require(self) -> Hatchet:
        if self._client is None:
            raise SchedulerConnectionError(
                "the scheduler is not connected: use `async with scheduler:` "
                "or `await scheduler.connect()` first"
            )
        return self._client

    def _standalone(self, task_name: str) -> Any:
        self._options(task_name)
        return self._standalones[task_name]

    @contextlib.contextmanager
    def _sdk(self, what: str) -> Iterator[None]:
        with map_sdk_errors(self._host, what):
            yield

    # connection

    async def connect(self) -> None:
        if self._client is not None:
            return
        try:
            client = await asyncio.to_thread(self._build_client)
        except SchedulerError:
            raise
        except Exception as exc:
            raise SchedulerConnectionError(f"cannot start the Hatchet client: {describe_error(exc)}") from exc
        timeout = self.config.connect_timeout_seconds
        try:
            with self._sdk("check the engine version"):
                await asyncio.wait_for(client.aio_get_engine_version(), timeout)
            with self._sdk("check the API token"):
                await asyncio.wait_for(client.workers.aio_list(), timeout)
            with self._sdk("register the tasks"):
                await asyncio.wait_for(self._register_workflows(client), timeout)
            await self._register_declared_crons()
        except TimeoutError:
            await self._drop_client()
            raise SchedulerConnectionError(
                f"Hatchet at {self._host} did not answer within {timeout:g}s; is the engine running, "
                "are host_port / server_url right, and does tls_strategy match the server?"
            ) from None
        except BaseException:
            await self._drop_client()
            raise

    async def _register_workflows(self, client: Hatchet) -> None:
        for name, standalone in [*self._standalones.items(), (TOMBSTONE, self._tombstone)]:
            response = await client._client.admin.aio_put_workflow(standalone.to_proto())
            if getattr(response, "workflow_id", None):
                self._workflow_ids[name] = str(response.workflow_id)

    async def _register_declared_crons(self) -> None:
        for options in self._tasks.values():
            if options.cron is None:
                continue
            name = self._prefix + options.name
            with self._sdk("list crons"):
                rows = (await self._require().cron.aio_list(workflow_name=name, limit=1000)).rows or []
            if any(r.name == DECLARED_CRON_NAME and r.cron == options.cron for r in rows):
                continue
            with self._sdk("register a declared cron"):
                for r in rows:
                    if r.name == DECLARED_CRON_NAME:  # the declaration changed
                        await self._require().cron.aio_delete(r.metadata.id)
                await self._require().cron.aio_create(options.name, DECLARED_CRON_NAME, options.cron, {}, {})

    async def _drop_client(self) -> None:
        self._client = None
        self._standalones = {}
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.stop)

    async def disconnect(self) -> None:
        await self._drop_client()

    # scheduling

    @traced_call("run_task")
    async def run_task(self, task_name: str, payload: Any = None, *, priority: int | None = None) -> str:
        self._require()
        standalone = self._standalone(task_name)
        data = check_payload(payload)
        run_prio = run_priority(self._options(task_name), priority)
        metadata = {QUEUED_KEY: utc_now().isoformat(), **current_metadata()}
        with self._sdk(f"run task {task_name!r}"):
            ref = await standalone.aio_run(
                data, wait_for_result=False, additional_metadata=metadata, priority=run_prio
            )
        task_id = str(ref.workflow_run_id)
        self._local[task_id] = _Local(task_name, data, utc_now(), None)
        return task_id

    @traced_call("schedule_task")
    async def schedule_task(
        self,
        task_name: str,
        payload: Any = None,
        *,
        delay_seconds: float | None = None,
        at: datetime | None = None,
        priority: int | None = None,
    ) -> str:
        self._require()
        due = resolve_due_time(utc_now(), delay_seconds, at)
        run_prio = run_priority(self._options(task_name), priority)
        data = check_payload(payload)
        task_id = str(uuid.uuid4())
        metadata = {ID_KEY: task_id, DUE_KEY: due.isoformat(), **current_metadata()}
        # Through the admin client: Standalone.aio_schedule sends an empty
        # payload as "" and the engine rejects that as invalid JSON.
        with self._sdk(f"schedule task {task_name!r}"):
            await self._require()._client.admin.aio_schedule_workflow(
                task_name,
                [due],
                dump_json(data, "payload"),
                ScheduleTriggerWorkflowOptions(additional_metadata=metadata, priority=run_prio),
            )
        self._local[task_id] = _Local(task_name, data, utc_now(), due)
        return task_id

    # crons

    @traced_call("add_cron")
    async def add_cron(self, task_name: str, expression: str, payload: Any = None) -> str:
        self._require()
        expression = normalize_cron(expression)
        self._options(task_name)
        data = check_payload(payload)
        with self._sdk(f"add a cron for {task_name!r}"):
            try:
                cron = await self._require().cron.aio_create(
                    task_name, f"owlclaw-{uuid.uuid4()}", expression, data, {}
                )
            except ApiException as exc:
                if exc.status == 400:
                    raise InvalidCronError(
                        f"Hatchet rejected cron expression {expression!r}: {exc.body or exc.reason}"
                    ) from exc
                raise
        return str(cron.metadata.id)

    async def remove_cron(self, cron_id: str) -> None:
        client = self._require()
        # the engine answers 500 (not 404) for an unknown cron id, and does not
        # filter by namespace: look it up among this namespace's crons
        if cron_id not in {c.id for c in await self.list_crons()}:
            raise TaskNotFoundError(f"no cron with id {cron_id!r}; list them with list_crons()")
        with self._sdk("remove a cron"):
            try:
                await client.cron.aio_delete(cron_id)
            except ApiException as exc:
                if _is_not_found(exc):
                    raise TaskNotFoundError(
                        f"no cron with id {cron_id!r}; list them with list_crons()"
                    ) from None
                raise

    async def list_crons(self, task_name: str | None = None) -> list[CronInfo]:
        client = self._require()
        kwargs: dict[str, Any] = {"limit": 1000}
        if task_name is not None:
            kwargs["workflow_name"] = self._prefix + task_name
        with self._sdk("list crons"):
            rows = (await client.cron.aio_list(**kwargs)).rows or []
        now = utc_now()
        found = []
        for row in rows:
            name = self._strip(row.workflow_name)
            if name is None or (task_name is not None and name != task_name):
                continue
            try:
                nxt: datetime | None = next_fire_time(row.cron, now)
            except InvalidCronError:
                nxt = None
            found.append(
                CronInfo(
                    id=str(row.metadata.id),
                    task_name=name,
                    expression=row.cron,
                    payload=json_roundtrip(dict(row.input or {}), "payload"),
                    next_run_at=nxt,
                )
            )
        found.sort(key=lambda c: c.id)
        return found

    def _strip(self, workflow_name: str | None) -> str | None:
        if not workflow_name or not workflow_name.startswith(self._prefix):
            return None
        return workflow_name[len(self._prefix) :]

    # looking runs up

    async def _get_run(self, run_id: str) -> Any | None:
        runs = self._require().runs
        with self._sdk("get a run"):
            try:
                return await asyncio.to_thread(_get_run_once, runs, run_id)
            except ValidationError:  # not a UUID: names no run
                return None
            except ApiException as exc:
                if _is_not_found(exc):
                    return None
                raise

    async def _schedule_rows(self, task_id: str) -> list[Any]:
        with self._sdk("list schedules"):
            rows = (
                await self._require().scheduled.aio_list(additional_metadata={ID_KEY: task_id}, limit=10)
            ).rows or []
        return [
            r
            for r in rows
            if self._strip(r.workflow_name) is not None
            and (r.additional_metadata or {}).get(ID_KEY) == task_id
        ]

    async def _run_by_metadata(self, task_id: str) -> Any | None:
        with self._sdk("list runs"):
            rows = (
                await self._require().runs.aio_list(
                    since=utc_now() - LIST_WINDOW,
                    additional_metadata={ID_KEY: task_id},
                    limit=10,
                    include_payloads=False,
                )
            ).rows or []
        for row in rows:
            if (row.additional_metadata or {}).get(ID_KEY) == task_id:
                return await self._get_run(str(row.workflow_run_external_id))
        return None

    async def _find(self, task_id: str) -> TaskInfo | tuple[str, Any] | None:
        """A pending schedule as TaskInfo, a run of this namespace as ("run", details), or None."""
        found = await self._find_any(task_id)
        if isinstance(found, tuple) and not await self._ours(found[1]):
            return None  # another namespace's run
        return found

    async def _find_any(self, task_id: str) -> TaskInfo | tuple[str, Any] | None:
        local = self._local.get(task_id)
        if local is None or local.due is None:
            details = await self._get_run(task_id)
            if details is not None:
                return ("run", details)
            if local is not None:
                return None
        for row in await self._schedule_rows(task_id):
            if row.workflow_run_id:
                details = await self._get_run(str(row.workflow_run_id))
                if details is not None:
                    return ("run", details)
                continue
            return self._schedule_info(task_id, row)
        details = await self._run_by_metadata(task_id)
        if details is not None:
            return ("run", details)
        return None

    async def _lookup(self, task_id: str) -> TaskInfo | tuple[str, Any]:
        if not isinstance(task_id, str) or not task_id:
            raise TaskNotFoundError(f"no task with id {task_id!r}")
        found = await self._find(task_id)
        if found is None and task_id in self._cancelled:
            return self._cancelled[task_id]
        if found is None:
            local = self._local.get(task_id)
            if local is not None:
                # created here; the engine's read side has not caught up yet
                pending = local.due is not None and local.due > utc_now()
                return TaskInfo(
                    id=task_id,
                    task_name=local.task_name,
                    state=TaskState.SCHEDULED if pending else TaskState.QUEUED,
                    payload=json_roundtrip(local.payload, "payload"),
                    scheduled_at=local.due or local.created_at,
                )
            # a schedule that fires right now leaves the schedule list before its
            # run is listed: look once more before saying it does not exist
            await asyncio.sleep(0.5)
            found = await self._find(task_id)
        if found is None:
            raise TaskNotFoundError(
                f"no task with id {task_id!r} (runs are searched for {LIST_WINDOW.days} days back)"
            )
        return found

    def _schedule_info(self, task_id: str, row: Any) -> TaskInfo:
        name = self._strip(row.workflow_name) or str(row.workflow_name)
        return TaskInfo(
            id=task_id,
            task_name=name,
            state=TaskState.SCHEDULED,
            payload=json_roundtrip(dict(row.input or {}), "payload"),
            scheduled_at=_utc(row.trigger_at),
        )

    async def _run_info(self, details: Any, *, with_error: bool = True) -> TaskInfo:
        run = details.run
        metadata = run.additional_metadata or {}
        task_id = str(metadata.get(ID_KEY) or run.metadata.id)
        tasks = list(details.tasks or [])
        task = tasks[0] if tasks else None
        workflow_name = getattr(task, "workflow_name", None) if task is not None else None
        name = self._strip(workflow_name) or await self._name_of_workflow(run.workflow_id) or "?"
        if name == TOMBSTONE:
            return _tombstone_info(metadata, run.input, run.created_at)
        state = _STATES.get(run.status, TaskState.QUEUED)
        started = _utc(run.started_at)
        retry_count = int(task.retry_count or 0) if task is not None else 0
        raw_error = run.error_message or (task.error_message if task is not None else None)
        task_state = _STATES.get(task.status) if task is not None else None
        if state is TaskState.FAILED and task_state in (TaskState.QUEUED, TaskState.RUNNING):
            # the run's row lags its task's: the task is on its next attempt
            # already, and retry_count counts it (CI saw FAILED, retry_count=2,
            # for a task with 2 retries whose last attempt had not run yet)
            state, retrying = task_state, False
        else:
            retrying = self._will_retry(name, state, retry_count, raw_error, _utc(run.finished_at))
        if retrying:
            state = TaskState.QUEUED
        attempts = _attempts(state, retry_count, started, retrying, raw_error) if task is not None else 0
        result = None
        output = run.output if isinstance(run.output, dict) else {}
        if state is TaskState.SUCCEEDED:
            result = output.get(RESULT_KEY)
        error: str | None = None
        if (state is TaskState.FAILED or retrying) and with_error:
            error = _error_text(run.error_message) or (
                _error_text(task.error_message) if task is not None else None
            )
            if not error and started is None:
                error = (
                    "TimeoutError: no worker started the run within the schedule timeout "
                    "(scheduler.hatchet.schedule_timeout_seconds); keep a worker running for "
                    f"task {name!r}"
                )
            if not error:
                error = await self._details_error(str(run.metadata.id), name)
        elif state is TaskState.CANCELLED:
            error = "cancelled"
        due = metadata.get(DUE_KEY)
        scheduled_at = _utc(datetime.fromisoformat(due)) if isinstance(due, str) else _utc(run.created_at)
        payload = _payload_of(run.input)
        return TaskInfo(
            id=task_id,
            task_name=name,
            state=state,
            payload=json_roundtrip(payload, "payload"),
            scheduled_at=scheduled_at,
            started_at=started,
            finished_at=_utc(run.finished_at) if state.is_final else None,
            attempts=attempts,
            result=json_roundtrip(result, "result"),
            error=error,
        )

    def _will_retry(
        self,
        task_name: str,
        state: TaskState,
        retry_count: int,
        error: str | None,
        failed_at: datetime | None,
    ) -> bool:
        """The engine reports a run FAILED for a moment between an attempt's
        failure and its retry, and while it retries handing the run to a worker;
        owlclaw calls both QUEUED."""
        if state is not TaskState.FAILED:
            return False
        if _engine_requeued(error, failed_at):
            return True
        options = self._tasks.get(task_name)
        if options is None or retry_count >= options.retries:
            return False
        return not (error and TaskRunError.deserialize(error).exc_type == NonRetryableException.__name__)

    async def _details_error(self, run_id: str, task_name: str) -> str:
        """The engine keeps a timeout's message only on the gRPC side."""
        try:
            with self._sdk("get run details"):
                details = await self._require().runs.aio_get_details(run_id)
            for task_run in (getattr(details, "task_runs", None) or {}).values():
                text = _error_text(getattr(task_run, "error", None))
                if text:
                    if "timeout" in text.lower() and not text.startswith("TimeoutError"):
                        return f"TimeoutError: {text}"
                    return text
        except SchedulerError:
            pass
        options = self._tasks.get(task_name)
        if options is not None and options.timeout is not None:
            return f"TimeoutError: task {task_name!r} exceeded its timeout of {options.timeout:g}s"
        return "failed (the engine recorded no error message)"

    async def _name_of_workflow(self, workflow_id: Any) -> str | None:
        """The task name of a workflow of this namespace; None for another namespace's."""
        for name, wid in self._workflow_ids.items():
            if wid == str(workflow_id):
                return name
        if str(workflow_id) in self._foreign_workflows:
            return None
        with self._sdk("get a workflow"):
            workflow = await self._require().workflows.aio_get(str(workflow_id))
        task_name = self._strip(workflow.name)
        if task_name is None:
            self._foreign_workflows.add(str(workflow_id))
            return None
        self._workflow_ids[task_name] = str(workflow_id)
        return task_name

    async def _ours(self, details: Any) -> bool:
        tasks = list(details.tasks or [])
        if tasks and self._strip(getattr(tasks[0], "workflow_name", None)) is not None:
            return True
        return await self._name_of_workflow(details.run.workflow_id) is not None

    # status, cancel, wait

    async def get_task_status(self, task_id: str) -> TaskInfo:
        self._require()
        found = await self._lookup(task_id)
        if isinstance(found, TaskInfo):
            return found
        info = await self._run_info(found[1])
        if info.id != task_id:  # looked up by our id: report the id the caller holds
            info = _replace_id(info, task_id)
        return info

    @traced_call("cancel_task")
    async def cancel_task(self, task_id: str) -> bool:
        client = self._require()
        if task_id in self._cancelled:
            return False
        # The engine's listings lag its writes a little: a schedule made a moment
        # ago may not be listed yet, a fired one's run not yet visible. Retry a while.
        for _ in range(CANCEL_RETRIES):
            found = await self._lookup(task_id)
            if not isinstance(found, TaskInfo):
                details = found[1]
                if (await self._run_info(details, with_error=False)).state.is_final:
                    return False
                with self._sdk("cancel a run"):
                    await client.runs.aio_cancel(str(details.run.metadata.id))
                return await self._run_cancelled(task_id)
            if found.state.is_final:
                return False
            if found.state is TaskState.SCHEDULED:
                if await self._cancel_schedule(found):
                    return True
            elif (local := self._local.get(task_id)) is not None and local.due is None:
                with self._sdk("cancel a run"):  # run_task's id is the run's id
                    await client.runs.aio_cancel(task_id)
                return await self._run_cancelled(task_id)
            await asyncio.sleep(POLL_SECONDS / 2)
        raise SchedulerConnectionError(
            f"could not cancel task {task_id}: Hatchet at {self._host} did not list its schedule "
            "or its run; try again"
        )

    async def _run_cancelled(self, task_id: str) -> bool:
        """After asking the engine to cancel a run: False if the run finished
        first (the cancel came too late), so the answer matches its final state."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        deadline = asked + CANCEL_CONFIRM_SECONDS
        while True:
            info = await self.get_task_status(task_id)
            settle = asked + CANCEL_SETTLE_SECONDS - loop.time()
            if info.state is TaskState.CANCELLED and info.started_at is not None and settle > 0:
                # code that finished just before the cancel reached its worker is
                # recorded SUCCEEDED a moment after the cancel: look again
                await asyncio.sleep(settle)
                info = await self.get_task_status(task_id)
            if info.state.is_final:
                return info.state is TaskState.CANCELLED
            if loop.time() >= deadline:
                return True  # the engine has the cancel; the run is still stopping
            await asyncio.sleep(POLL_SECONDS)

    async def _fired(self, task_id: str) -> bool:
        """Whether a run of this schedule shows up: the engine may have fired
        it just before it was deleted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRED_WATCH_SECONDS
        while loop.time() < deadline:
            if await self._run_by_metadata(task_id) is not None:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return False

    async def _cancel_schedule(self, info: TaskInfo) -> bool:
        """Delete a pending schedule; False if it is not listed (yet) or just fired."""
        for row in await self._schedule_rows(info.id):
            if row.workflow_run_id:
                continue
            with self._sdk("delete a schedule"):
                try:
                    await self._require().scheduled.aio_delete(str(row.metadata.id))
                except ApiException as exc:
                    if not _is_not_found(exc):
                        raise
                    return False  # it fired meanwhile: cancel its run instead
            due_soon = info.scheduled_at is None or info.scheduled_at - utc_now() < FIRE_WINDOW
            if due_soon and await self._fired(info.id):
                return False  # deleted as it fired: cancel its run instead
            self._cancelled[info.id] = TaskInfo(
                id=info.id,
                task_name=info.task_name,
                state=TaskState.CANCELLED,
                payload=info.payload,
                scheduled_at=info.scheduled_at,
                finished_at=utc_now(),
                error="cancelled",
            )
            await self._bury(info)
            return True
        return False

    async def _bury(self, info: TaskInfo) -> None:
        """Leave a record of a cancelled schedule that other processes can find:
        a run of the tombstone workflow (which no worker serves), cancelled at once."""
        assert info.scheduled_at is not None
        metadata = {ID_KEY: info.id, TASK_KEY: info.task_name, DUE_KEY: info.scheduled_at.isoformat()}
        try:
            with self._sdk("record a cancelled schedule"):
                ref = await self._tombstone.aio_run(
                    info.payload, wait_for_result=False, additional_metadata=metadata
                )
                await self._require().runs.aio_cancel(str(ref.workflow_run_id))
        except SchedulerError as exc:  # the schedule is gone either way
            log.warning("cancelled schedule %s is remembered in this process only: %s", info.id, exc)

    async def wait_for_task(self, task_id: str, timeout: float = 60.0) -> TaskInfo:
        self._require()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        info = await self.get_task_status(task_id)
        while not info.state.is_final:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeoutError(f"task {task_id} is still {info.state.value} after {timeout:g}s")
            await asyncio.sleep(min(POLL_SECONDS, remaining))
            info = await self.get_task_status(task_id)
        return info

    # listings

    async def list_scheduled_tasks(self, task_name: str | None = None) -> list[TaskInfo]:
        client = self._require()
        kwargs: dict[str, Any] = {"limit": 1000}
        if task_name is not None:  # any name: another process may have registered it
            wid = await self._workflow_id(task_name)
            if wid is None:
                return []
            kwargs["workflow_id"] = wid
        with self._sdk("list schedules"):
            rows = (await client.scheduled.aio_list(**kwargs)).rows or []
        found = []
        for row in rows:
            name = self._strip(row.workflow_name)
            if name is None or (task_name is not None and name != task_name) or row.workflow_run_id:
                continue
            task_id = (row.additional_metadata or {}).get(ID_KEY) or str(row.metadata.id)
            if task_id in self._cancelled:
                continue
            found.append(self._schedule_info(str(task_id), row))
        found.sort(key=lambda t: t.scheduled_at or datetime.max.replace(tzinfo=UTC))
        return found

    async def _workflow_id(self, task_name: str) -> str | None:
        if task_name in self._workflow_ids:
            return self._workflow_ids[task_name]
        with self._sdk("list workflows"):
            rows = (
                await self._require().workflows.aio_list(workflow_name=self._prefix + task_name, limit=100)
            ).rows or []
        for row in rows:
            if row.name == self._prefix + task_name:
                self._workflow_ids[task_name] = str(row.metadata.id)
                return self._workflow_ids[task_name]
        return None

    async def list_tasks(
        self,
        task_name: str | None = None,
        *,
        states: Iterable[TaskState] | None = None,
        limit: int = 100,
    ) -> list[TaskInfo]:
        client = self._require()
        wanted = set(states) if states is not None else None
        kwargs: dict[str, Any] = {
            "since": utc_now() - LIST_WINDOW,
            "limit": max(limit, 1) * 4 if task_name is None else max(limit, 1),
            "only_tasks": False,
        }
        if task_name is not None:  # any name: another process may have registered it
            wid = await self._workflow_id(task_name)
            if wid is None:
                return []
            kwargs["workflow_ids"] = [wid]
        if wanted is not None:
            kwargs["statuses"] = [_SDK_STATUSES[s] for s in wanted if s in _SDK_STATUSES]
        found: list[TaskInfo] = []  # runs only: pending schedules are list_scheduled_tasks()
        if wanted is None or kwargs.get("statuses"):
            with self._sdk("list runs"):
                rows = (await client.runs.aio_list(**kwargs)).rows or []
            for row in rows:
                name = self._strip(row.workflow_name)
                if name is None or name == TOMBSTONE or (task_name is not None and name != task_name):
                    continue  # a tombstone records a schedule that never became a run
                found.append(self._summary_info(row, name))
        found.sort(key=lambda t: t.scheduled_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return found[:limit]

    def _summary_info(self, row: Any, name: str) -> TaskInfo:
        metadata = row.additional_metadata or {}
        if name == TOMBSTONE:
            return _tombstone_info(metadata, row.input, row.created_at)
        state = _STATES.get(row.status, TaskState.QUEUED)
        started = _utc(row.started_at)
        retry_count = int(row.retry_count or 0)
        retrying = self._will_retry(name, state, retry_count, row.error_message, _utc(row.finished_at))
        if retrying:
            state = TaskState.QUEUED
        attempts = _attempts(state, retry_count, started, retrying, row.error_message)
        output = row.output if isinstance(row.output, dict) else {}
        due = metadata.get(DUE_KEY)
        return TaskInfo(
            id=str(metadata.get(ID_KEY) or row.workflow_run_external_id),
            task_name=name,
            state=state,
            payload=json_roundtrip(_payload_of(row.input), "payload"),
            scheduled_at=_utc(datetime.fromisoformat(due)) if isinstance(due, str) else _utc(row.created_at),
            started_at=started,
            finished_at=_utc(row.finished_at) if state.is_final else None,
            attempts=attempts,
            result=json_roundtrip(output.get(RESULT_KEY), "result") if state is TaskState.SUCCEEDED else None,
            error=(
                _error_text(row.error_message)
                if state is TaskState.FAILED or retrying
                else "cancelled"
                if state is TaskState.CANCELLED
                else None
            ),
        )

    async def diagnose(self) -> list[Finding]:
        """Checks for ``owlclaw-scheduler doctor``: versions and workers."""
        from owlclaw.backends.hatchet.doctor import diagnose

        with self._sdk("run the doctor's checks"):
            return await diagnose(self._require(), self._prefix, self.namespace)

    # workers

    async def start_worker(self) -> None:
        raise NotSupportedError(
            "the Hatchet SDK's worker needs the main thread and its own event loop, so it cannot "
            "start inside a running asyncio program: run `owlclaw-scheduler worker APP` "
            "(APP = module:scheduler) in its own process"
        )

    async def stop_worker(self) -> None:
        return None

    def run_worker(self) -> None:
        """Run a Hatchet worker for every registered task until SIGTERM/SIGINT.

        SIGTERM pauses new assignments, waits for the runs in flight to
        finish, then returns (the SDK exits the process with status 0).
        """
        if not self._tasks:
            raise NotSupportedError("no tasks are registered: declare some with @scheduler.task first")
        client = self._client or self._build_client()
        worker = client.worker(
            self.config.effective_worker_name,
            slots=self.config.slots,
            durable_slots=self.config.slots,
            workflows=list(self._standalones.values()),
        )
        log.info(
            "hatchet worker %s running %d tasks on %s (namespace %s); SIGTERM drains and stops",
            worker.name,
            len(self._tasks),
            self._host,
            self.namespace,
        )
        worker.start()


def _backoff(options: TaskOptions) -> dict[str, Any]:
    """Hatchet waits ``factor ** retry`` seconds, capped at a whole ``max``.
    A fixed wait D (whole seconds >= 1) is factor=D, max=D."""
    if options.backoff is None or options.backoff_base is None:
        return {"backoff_factor": None, "backoff_max_seconds": None}
    if options.backoff == "fixed":
        seconds = int(options.backoff_base)
        return {"backoff_factor": float(seconds), "backoff_max_seconds": seconds}
    cap = options.backoff_max_seconds
    return {
        "backoff_factor": options.backoff_base,
        "backoff_max_seconds": max(1, math.ceil(cap)) if cap is not None else None,
    }


def _concurrency(options: TaskOptions) -> ConcurrencyExpression | None:
    """``concurrency=N``: N runs at once per group; the group is the payload
    field ``concurrency_key`` (runs without it share one group)."""
    if options.concurrency is None:
        return None
    key = options.concurrency_key
    expression = f"has(input.{key}) ? string(input.{key}) : ''" if key else "'all'"
    return ConcurrencyExpression(
        expression=expression,
        max_runs=options.concurrency,
        limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    )


async def _never_runs(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:  # pragma: no cover
    raise RuntimeError("the owlclaw tombstone workflow is never served by a worker")


def _tombstone_info(metadata: Any, raw_input: Any, created_at: datetime | None) -> TaskInfo:
    due = metadata.get(DUE_KEY)
    return TaskInfo(
        id=str(metadata.get(ID_KEY)),
        task_name=str(metadata.get(TASK_KEY)),
        state=TaskState.CANCELLED,
        payload=json_roundtrip(_payload_of(raw_input), "payload"),
        scheduled_at=_utc(datetime.fromisoformat(due)) if isinstance(due, str) else None,
        finished_at=_utc(created_at),
        error="cancelled",
    )


def _get_run_once(runs: Any, run_id: str) -> Any:
    """``runs.get`` without the SDK's retries: it retries a 404 for ~16 s, and an
    unknown id is an ordinary answer here."""
    with runs.client() as api_client:
        return runs._wra(api_client).v1_workflow_run_get(run_id)


def _replace_id(info: TaskInfo, task_id: str) -> TaskInfo:
    from dataclasses import replace

    return replace(info, id=task_id)


def _lateness(metadata: Any, attempt: int) -> float | None:
    """Seconds from due time (or the run_task call) to the first attempt's start."""
    due = metadata.get(DUE_KEY) or metadata.get(QUEUED_KEY)
    if attempt != 1 or not isinstance(due, str):
        return None
    try:
        return (utc_now() - datetime.fromisoformat(due)).total_seconds()
    except ValueError:
        return None
