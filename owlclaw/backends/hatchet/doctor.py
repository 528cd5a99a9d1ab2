"""Hatchet's checks for ``owlclaw-scheduler doctor``: versions and workers."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION
from owlclaw.scheduler.doctor import Finding

if TYPE_CHECKING:
    from owlclaw.backends.hatchet.store import ScheduleStore

__all__ = ["SDK_VERSION", "diagnose", "state_database"]

#: the hatchet-sdk release paired with ENGINE_VERSION (the ``hatchet`` extra pins it)
SDK_VERSION = "1.38.0"


def _sdk_version() -> str:
    try:
        return metadata.version("hatchet-sdk")
    except metadata.PackageNotFoundError:
        return "not installed"


def _versions(engine_version: str) -> list[Finding]:
    found = []
    sdk = _sdk_version()
    pair = f"this owlclaw-scheduler is tested with engine {ENGINE_VERSION} and hatchet-sdk {SDK_VERSION}"
    if sdk == SDK_VERSION:
        found.append(Finding("sdk", "ok", f"hatchet-sdk {sdk}"))
    else:
        fix = f"pip install 'hatchet-sdk=={SDK_VERSION}' ({pair})"
        found.append(Finding("sdk", "warn", f"hatchet-sdk {sdk}, expected {SDK_VERSION}", fix))
    if engine_version.lstrip("v") == ENGINE_VERSION.lstrip("v"):
        found.append(Finding("engine", "ok", f"engine {engine_version}"))
    else:
        fix = f"run the engine at {ENGINE_VERSION}, or upgrade engine and SDK together ({pair})"
        detail = f"engine {engine_version or 'unknown'}, expected {ENGINE_VERSION}"
        found.append(Finding("engine", "warn", detail, fix))
    return found


def _serves_namespace(worker: Any, prefix: str) -> bool:
    actions = worker.actions or []
    return any(str(a).startswith(prefix) for a in actions)


async def diagnose(client: Any, prefix: str, namespace: str) -> list[Finding]:
    """Engine and SDK versions, and whether a worker serves this namespace."""
    found = _versions(str(await client.aio_get_engine_version()))
    rows = (await client.workers.aio_list()).rows or []
    active = [w for w in rows if str(getattr(w.status, "value", w.status)) == "ACTIVE"]
    ours = [w for w in active if _serves_namespace(w, prefix)]
    if ours:
        names = ", ".join(sorted(w.name for w in ours))
        detail = f"{len(ours)} worker(s) serving namespace {namespace!r}: {names}"
        found.append(Finding("workers", "ok", detail))
    else:
        others = f" ({len(active)} active for other namespaces)" if active else ""
        found.append(
            Finding(
                "workers",
                "warn",
                f"no worker is serving namespace {namespace!r}{others}; runs will queue until one starts",
                "start one: owlclaw-scheduler worker myapp.tasks:scheduler (with the same owlclaw.yaml)",
            )
        )
    return found


async def state_database(store: ScheduleStore) -> Finding:
    """The schedules' state database (``scheduler.hatchet.state_database_url``)
    answers and holds this owlclaw's schema (created if missing)."""
    from owlclaw.scheduler.errors import SchedulerConnectionError

    try:
        await store.ensure_schema()
        async with store.transaction() as conn:
            await store.now(conn)
    except SchedulerConnectionError as exc:
        return Finding(
            "schedule state",
            "fail",
            str(exc),
            "point scheduler.hatchet.state_database_url at a database this host reaches (docs/schedules.md)",
        )
    return Finding("schedule state", "ok", f"schedule state database {store.where}")
