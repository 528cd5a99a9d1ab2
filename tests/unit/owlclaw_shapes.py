"""Callers shaped like OwlClaw's: each makes the calls one of OwlClaw's modules
makes on its Hatchet client (written here, not copied): ``owlclaw/agent/tools.py``
(BuiltInTools), ``owlclaw/triggers/cron.py`` (CronTriggerRegistry),
``owlclaw/agent/runtime/hatchet_bridge.py``, ``owlclaw/mcp/task_tools.py`` and
``owlclaw/web/providers/overview.py``: the same arguments, and they read the
same fields of what comes back. Used by test_owlclaw_shaped.py and
test_owlclaw_memory_running.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig

MONDAY_0800 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
TOKEN = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl"


# --------------------------------------------------------------------------
# OwlClaw-shaped callers


class CronRegistryShape:
    """``CronTriggerRegistry.start()``/``pause_trigger``/``trigger_now``: a task
    ``cron_<event>`` per trigger, plus ``agent_scheduled_run``."""

    def __init__(self, triggers: dict[str, tuple[str, int]], *, one_arg_handler: bool = False) -> None:
        self.triggers = triggers  # event -> (expression, priority)
        self.one_arg_handler = one_arg_handler  # OwlClaw's cron_handler(_ctx) today
        self.fired: list[tuple[str, Any]] = []
        self.client: HatchetClient | None = None

    def start(self, client: HatchetClient, tenant_id: str = "default") -> None:
        self.client = client
        for event, (expression, priority) in self.triggers.items():
            self._register(client, event, expression, priority)
        fired = self.fired

        async def agent_scheduled_run_handler(inp: Any, _ctx: Any) -> dict[str, Any]:
            data = inp if isinstance(inp, dict) else {}
            fired.append(("agent_scheduled_run", data))
            return {"status": "success", "run_id": data.get("scheduled_by_run_id")}

        agent_scheduled_run_handler.__name__ = "agent_scheduled_run"
        client.task(name="agent_scheduled_run", retries=1)(agent_scheduled_run_handler)

    def _register(self, client: HatchetClient, event: str, expression: str, priority: int) -> None:
        fired = self.fired
        if self.one_arg_handler:

            async def cron_handler(_ctx: Any) -> dict[str, Any]:
                fired.append((event, _ctx))
                return {"status": "success"}

        else:

            async def cron_handler(_input: Any, _ctx: Any) -> dict[str, Any]:  # type: ignore[misc]
                fired.append((event, _input))
                return {"status": "success"}

        cron_handler.__name__ = f"cron_{event}"
        client.task(name=f"cron_{event}", cron=expression, retries=3, priority=priority or 1)(cron_handler)

    def pause_trigger(self, event: str) -> None:
        assert self.client is not None
        pause_fn = getattr(self.client, "pause_task", None)
        if callable(pause_fn):
            pause_fn(f"cron_{event}")

    def resume_trigger(self, event: str) -> None:
        assert self.client is not None
        resume_fn = getattr(self.client, "resume_task", None)
        if callable(resume_fn):
            resume_fn(f"cron_{event}")

    async def trigger_now(self, event: str, **kwargs: Any) -> str:
        assert self.client is not None
        kwargs.setdefault("tenant_id", "default")
        return str(await self.client.run_task_now(f"cron_{event}", **kwargs))


class BuiltInToolsShape:
    """``BuiltInTools._schedule_once`` / ``_schedule_cron`` / ``_cancel_schedule``."""

    def __init__(self, client: HatchetClient, task: str = "agent_scheduled_run", timeout: float = 30) -> None:
        self.client, self.task, self.timeout = client, task, timeout

    async def schedule_once(self, delay: int, focus: str, agent_id: str, run_id: str) -> dict[str, Any]:
        try:
            schedule_id = await asyncio.wait_for(
                self.client.schedule_task(
                    self.task,
                    delay,
                    agent_id=agent_id,
                    trigger="schedule_once",
                    focus=focus,
                    scheduled_by_run_id=run_id,
                    tenant_id="default",
                ),
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - what OwlClaw does: an error payload
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"schedule_id": schedule_id, "scheduled_at": f"in {delay} seconds", "focus": focus}

    async def schedule_cron(
        self, cron_expression: str, focus: str, agent_id: str, run_id: str
    ) -> dict[str, Any]:
        if not croniter.is_valid(cron_expression):  # CronTriggerRegistry._validate_cron_expression
            return {"error": f"Invalid cron expression: {cron_expression!r}"}
        cron_name = f"agent_cron_{agent_id}_{uuid.uuid4().hex[:12]}"
        input_data = {
            "agent_id": agent_id,
            "trigger": "schedule_cron",
            "focus": focus,
            "scheduled_by_run_id": run_id,
            "tenant_id": "default",
        }
        try:
            schedule_id = await asyncio.wait_for(
                self.client.schedule_cron(
                    workflow_name=self.task,
                    cron_name=cron_name,
                    expression=cron_expression,
                    input_data=input_data,
                ),
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - as OwlClaw's tool
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"schedule_id": schedule_id, "cron_name": cron_name, "cron_expression": cron_expression}

    async def cancel_schedule(self, schedule_id: str) -> dict[str, Any]:
        ok = await asyncio.wait_for(self.client.cancel_task(schedule_id), timeout=self.timeout)
        if not ok and hasattr(self.client, "cancel_cron"):
            ok = await asyncio.wait_for(self.client.cancel_cron(schedule_id), timeout=self.timeout)
        return {"cancelled": bool(ok), "schedule_id": schedule_id}


class RuntimeBridgeShape:
    """``HatchetRuntimeBridge``: ``register_task``, ``run_now``, ``schedule_task``, ``schedule_cron``."""

    def __init__(self, client: HatchetClient, task_name: str = "agent_run", retries: int = 3) -> None:
        self.hatchet, self.task_name, self.retries = client, task_name, retries
        self.inputs: list[Any] = []

    def register_task(self) -> Callable[..., Any]:
        decorator = self.hatchet.task(name=self.task_name, retries=self.retries)
        inputs = self.inputs

        async def _handler(input: dict[str, Any] | None = None, ctx: Any = None) -> dict[str, Any]:
            del ctx
            inputs.append(input)
            return {"run": "ok", "payload": input}

        return decorator(_handler)

    async def run_now(self, **kwargs: Any) -> str:
        return str(await self.hatchet.run_task_now(self.task_name, **kwargs))

    async def schedule_task(self, delay_seconds: int, **kwargs: Any) -> str:
        return str(await self.hatchet.schedule_task(self.task_name, delay_seconds, **kwargs))

    async def schedule_cron(self, cron_name: str, expression: str, input_data: dict[str, Any]) -> str:
        return str(
            await self.hatchet.schedule_cron(
                workflow_name=self.task_name,
                cron_name=cron_name,
                expression=expression,
                input_data=input_data,
            )
        )


class TaskToolsShape:
    """``owlclaw/mcp/task_tools.py``: task_create / task_status / task_cancel."""

    def __init__(self, client: HatchetClient) -> None:
        self.task_client = client

    async def task_create(
        self, workflow_name: str, input_data: dict[str, Any] | None = None, schedule: int | None = None
    ) -> dict[str, Any]:
        payload = input_data or {}
        if schedule is None:
            task_id = await self.task_client.run_task_now(workflow_name, **payload)
            return {"task_id": task_id, "status": "running"}
        task_id = await self.task_client.schedule_task(workflow_name, delay_seconds=schedule, **payload)
        return {"task_id": task_id, "status": "scheduled"}

    async def task_status(self, task_id: str) -> dict[str, Any]:
        payload = await self.task_client.get_task_status(task_id)
        status = payload.get("status", "unknown")
        result: dict[str, Any] = {"task_id": str(payload.get("id", task_id)), "status": str(status)}
        if "result" in payload:
            result["result"] = payload["result"]
        if "error" in payload:
            result["error"] = payload["error"]
        return result

    async def task_cancel(self, task_id: str) -> dict[str, Any]:
        return {"task_id": task_id, "cancelled": await self.task_client.cancel_task(task_id)}


async def overview_hatchet_health() -> tuple[bool, str]:
    """``DefaultOverviewProvider._check_hatchet_health``: a HatchetConfig without
    mode, connect() in a thread with a 3 s limit, then disconnect()."""
    token = os.getenv("HATCHET_API_TOKEN", "").strip()
    server_url = os.getenv("HATCHET_SERVER_URL", "").strip() or "http://localhost:7077"
    if not token:
        return False, "HATCHET_API_TOKEN not set"
    client = HatchetClient(HatchetConfig(server_url=server_url, api_token=token))
    try:
        await asyncio.wait_for(asyncio.to_thread(client.connect), timeout=3.0)
        await asyncio.to_thread(client.disconnect)
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - as OwlClaw's health check
        return False, f"{exc.__class__.__name__}: {exc}"
