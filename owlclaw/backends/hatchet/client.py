"""The SDK client of one scheduler: building it, registering workflows and
declared crons, and the engine's workflow ids.

In ``embedded`` mode the client starts the locally built engine first (and
stops it when dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet

from owlclaw.backends.hatchet.batch import TriggerBatcher
from owlclaw.backends.hatchet.config import HatchetConfig
from owlclaw.backends.hatchet.errors import map_sdk_errors
from owlclaw.backends.hatchet.naming import DECLARED_CRON_NAME, LINK, TOMBSTONE, Names
from owlclaw.backends.hatchet.worker import define, define_link, never_runs
from owlclaw.scheduler.errors import SchedulerConnectionError
from owlclaw.scheduler.kit import NOT_CONNECTED
from owlclaw.scheduler.models import TaskOptions

__all__ = ["Connection"]


class Connection:
    """The client, the workflows it defined, and what the engine calls them.

    ``tasks`` is the scheduler's live task registry; ``scheduler`` is what a
    run executed by this process's worker sees as ``ctx.scheduler``.
    """

    def __init__(self, config: HatchetConfig, tasks: Mapping[str, TaskOptions], scheduler: Any) -> None:
        self.config = config
        self.names = Names(config.namespace)
        self.tasks = tasks
        self.scheduler = scheduler
        self.client: Hatchet | None = None
        self.standalones: dict[str, Any] = {}
        self.tombstone: Any = None
        self.internal: dict[str, Any] = {}  # owlclaw's workflows a worker serves (the schedule link)
        self.workflow_ids: dict[str, str] = {}
        self.foreign_workflows: set[str] = set()
        self.engine: Any = None  # LocalEngine in embedded mode
        self.batcher: TriggerBatcher | None = None  # None: batch_triggers is off
        self._later: set[asyncio.Task[None]] = set()  # housekeeping calls no caller waits for
        self.host = config.host_port or "<embedded engine>"

    @contextlib.contextmanager
    def sdk(self, what: str, *, missing: str | None = None, invalid: str | None = None) -> Iterator[None]:
        """Map the SDK's errors for a call about ``what`` (see errors.py)."""
        with map_sdk_errors(self.host, what, missing=missing, invalid=invalid):
            yield

    def require(self) -> Hatchet:
        if self.client is None:
            raise SchedulerConnectionError(NOT_CONNECTED)
        return self.client

    def _define(self, client: Hatchet, options: TaskOptions) -> Any:
        return define(client, options, self.scheduler, self.config.schedule_timeout_seconds)

    def task_added(self, options: TaskOptions) -> None:
        if self.client is not None:
            self.standalones[options.name] = self._define(self.client, options)

    def build(self) -> Hatchet:
        """Build the client (starting the embedded engine first) and define the workflows."""
        cfg = self.config
        token = cfg.api_token.get_secret_value() if cfg.api_token is not None else ""
        host_port = cfg.host_port or ""
        server_url = cfg.server_url
        tls = cfg.effective_tls_strategy
        if cfg.mode == "embedded":
            from owlclaw.backends.hatchet.local.engine import LocalEngine

            if self.engine is None:
                assert cfg.database_url is not None
                self.engine = LocalEngine(cfg.database_url, bin_dir=cfg.binary_path)
            conn = self.engine.start()
            token, host_port, server_url, tls = conn.token, conn.host_port, conn.server_url, "none"
        if server_url is None:
            host = host_port.rpartition(":")[0] or "localhost"
            server_url = f"{'http' if tls == 'none' else 'https'}://{host}"
        self.host = f"{host_port} (API {server_url})"
        extra: dict[str, Any] = {}
        if tls != "none" and urlsplit(server_url).hostname:
            extra["server_name"] = host_port.rpartition(":")[0]
        with map_sdk_errors(host_port, "configure the client", configuring=True):
            client_config = ClientConfig(
                token=token,
                host_port=host_port,
                server_url=server_url,
                namespace=cfg.namespace,
                tls_config=ClientTLSConfig(strategy=tls, **extra),
            )
            client = Hatchet(config=client_config)
        self.client = client
        if cfg.batch_triggers:
            self.batcher = TriggerBatcher(client_config, self.host, cfg.trigger_queue_size)
        self.standalones = {name: self._define(client, o) for name, o in self.tasks.items()}
        self.tombstone = client.task(name=TOMBSTONE, input_validator=dict[str, Any])(never_runs)
        self.internal = {}
        if getattr(self.scheduler, "schedule_chain", None) is not None:
            chain_of = lambda: self.scheduler.schedule_chain  # noqa: E731
            self.internal[LINK] = define_link(client, chain_of, cfg.schedule_timeout_seconds)
        return client

    async def connect(self) -> None:
        """Build the client, check the engine and the token, register the workflows
        and the declared crons; on any failure nothing stays connected."""
        if self.client is not None:
            return
        with map_sdk_errors(self.host, "start the client", starting=True):
            client = await asyncio.to_thread(self.build)
        timeout = self.config.connect_timeout_seconds
        try:
            with map_sdk_errors(self.host, "connect", timeout=timeout):
                with self.sdk("check the engine version"):
                    await asyncio.wait_for(client.aio_get_engine_version(), timeout)
                with self.sdk("check the API token"):
                    await asyncio.wait_for(client.workers.aio_list(), timeout)
                with self.sdk("register the tasks"):
                    await asyncio.wait_for(self._register_workflows(client), timeout)
                await self._register_declared_crons()
        except BaseException:
            await self.drop()
            raise

    async def _register_workflows(self, client: Hatchet) -> None:
        owned = [(TOMBSTONE, self.tombstone), *self.internal.items()]
        for name, standalone in [*self.standalones.items(), *owned]:
            response = await client._client.admin.aio_put_workflow(standalone.to_proto())
            if getattr(response, "workflow_id", None):
                self.workflow_ids[name] = str(response.workflow_id)

    async def _register_declared_crons(self) -> None:
        """One ``owlclaw-declared`` cron per task declared with ``cron=``,
        replaced when the expression changed."""
        for options in self.tasks.values():
            if options.cron is None or options.timezone != "UTC":
                continue  # a zoned one is a schedule (HatchetScheduler.connect)
            with self.sdk("list crons"):
                rows = (
                    await self.require().cron.aio_list(
                        workflow_name=self.names.workflow(options.name), limit=1000
                    )
                ).rows or []
            if any(r.name == DECLARED_CRON_NAME and r.cron == options.cron for r in rows):
                continue
            if await self._declared_converted(options):
                continue
            with self.sdk("register a declared cron"):
                for r in rows:
                    if r.name == DECLARED_CRON_NAME:  # the declaration changed
                        await self.require().cron.aio_delete(r.metadata.id)
                await self.require().cron.aio_create(options.name, DECLARED_CRON_NAME, options.cron, {}, {})

    async def _declared_converted(self, options: TaskOptions) -> bool:
        """Whether this declared cron was made a schedule (convert.py): then it is
        not registered again. Asked after the engine's crons were listed: a
        conversion inserts its row before it deletes the cron."""
        chain = getattr(self.scheduler, "schedule_chain", None)
        if chain is None:
            return False
        assert options.cron is not None
        from_cron = {"name": DECLARED_CRON_NAME, "expression": options.cron}
        return bool(await chain.book.converted(options.name, from_cron))

    def later(self, call: Coroutine[Any, Any, None]) -> None:
        """Run ``call`` in the background; ``drop`` waits for it."""
        task = asyncio.get_running_loop().create_task(call)
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def drop(self) -> None:
        """Send the triggers still queued, finish the housekeeping, forget the
        client; stop the embedded engine if this process started one."""
        if self._later:
            await asyncio.gather(*self._later, return_exceptions=True)
        if self.batcher is not None:
            batcher, self.batcher = self.batcher, None
            await batcher.close()
        self.client = None
        self.standalones = {}
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await asyncio.to_thread(engine.stop)

    def standalone(self, task_name: str) -> Any:
        return self.standalones[task_name]

    async def workflow_id(self, task_name: str) -> str | None:
        """The engine's id of a task's workflow (any process may have registered it)."""
        if task_name in self.workflow_ids:
            return self.workflow_ids[task_name]
        name = self.names.workflow(task_name)
        with self.sdk("list workflows"):
            rows = (await self.require().workflows.aio_list(workflow_name=name, limit=100)).rows or []
        for row in rows:
            if row.name == name:
                self.workflow_ids[task_name] = str(row.metadata.id)
                return self.workflow_ids[task_name]
        return None

    async def name_of_workflow(self, workflow_id: Any) -> str | None:
        """The task name of a workflow of this namespace; None for another namespace's."""
        for name, wid in self.workflow_ids.items():
            if wid == str(workflow_id):
                return name
        if str(workflow_id) in self.foreign_workflows:
            return None
        with self.sdk("get a workflow"):
            workflow = await self.require().workflows.aio_get(str(workflow_id))
        task_name = self.names.strip(workflow.name)
        if task_name is None:
            self.foreign_workflows.add(str(workflow_id))
            return None
        self.workflow_ids[task_name] = str(workflow_id)
        return task_name
