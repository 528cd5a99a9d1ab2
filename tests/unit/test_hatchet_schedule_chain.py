"""``chain.Chain`` against a recording stand-in of the SDK client: what a
schedule's effects become on the engine (links, kicks, the occurrence's run
and its metadata, deleting links), without an engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hatchet_sdk.runnables.contextvars import ctx_workflow_run_id

from owlclaw.backends.hatchet.chain import Chain
from owlclaw.backends.hatchet.gate import Effects, Fire, Link
from owlclaw.backends.hatchet.naming import LINK, Names
from owlclaw.backends.hatchet.wire import DUE_KEY, NOMINAL_KEY, OCCURRENCE_KEY, SCHEDULE_KEY


class Admin:
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, datetime, str, dict[str, str]]] = []
        self.runs: list[tuple[str, str, dict[str, str], str | None]] = []

    async def aio_schedule_workflow(self, name: str, at: list[datetime], body: str, options: Any) -> None:
        self.scheduled.append((name, at[0], body, options.additional_metadata))

    def run_workflow(self, name: str, body: str, options: Any) -> Any:
        # the parent the SDK would read from the caller's context
        self.runs.append((name, body, options.additional_metadata, ctx_workflow_run_id.get()))
        return SimpleNamespace(workflow_run_id=f"run-{len(self.runs)}")


class Scheduled:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.deleted: list[str] = []

    async def aio_list(self, **kwargs: Any) -> Any:
        return SimpleNamespace(rows=self.rows)

    async def aio_delete(self, scheduled_id: str) -> None:
        self.deleted.append(scheduled_id)


class Book:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def triggered(self, fire: Fire, run_id: str) -> None:
        self.calls.append((fire.occurrence_id, run_id))


def _chain(rows: list[Any] | None = None) -> tuple[Chain, Admin, Scheduled, Book]:
    admin, scheduled, book = Admin(), Scheduled(rows or []), Book()
    client = SimpleNamespace(_client=SimpleNamespace(admin=admin), scheduled=scheduled)

    @contextlib.contextmanager
    def sdk(what: str, **kwargs: Any) -> Iterator[None]:
        yield

    conn = SimpleNamespace(require=lambda: client, sdk=sdk, names=Names("ns"))
    lookups = SimpleNamespace(conn=conn, local={})
    return Chain(lookups, None, "ns", book=book), admin, scheduled, book  # type: ignore[arg-type]


NOW = datetime.now(UTC)


async def test_a_near_link_is_armed_and_kicked_a_far_one_only_armed() -> None:
    chain, admin, _, _ = _chain()
    near = Link("s1", NOW + timedelta(seconds=2), NOW + timedelta(seconds=2), 3)
    far = Link("s2", NOW + timedelta(minutes=5), NOW + timedelta(minutes=5), 1)
    await chain.execute(Effects(arm=(near, far)))
    assert [(n, at, meta) for n, at, _, meta in admin.scheduled] == [
        (LINK, near.at, {SCHEDULE_KEY: "s1"}),
        (LINK, far.at, {SCHEDULE_KEY: "s2"}),
    ]
    assert [(n, meta) for n, _, meta, _ in admin.runs] == [(LINK, {SCHEDULE_KEY: "s1"})]
    await chain.execute(Effects(arm=(near,)), kick=False)  # a link's own run follows instead
    assert len(admin.runs) == 1


async def test_an_occurrence_s_run_carries_it_and_is_no_child_of_the_link() -> None:
    chain, admin, _, book = _chain()
    nominal = datetime(2030, 1, 1, 9, tzinfo=UTC)
    fire = Fire("s1", "job", nominal, "s1@2030-01-01T09:00:00Z", {"k": 1})
    token = ctx_workflow_run_id.set("the-link-run")  # as inside the link's run
    try:
        assert await chain.execute(Effects(fire=(fire,))) == ["run-1"]
    finally:
        ctx_workflow_run_id.reset(token)
    name, body, meta, parent = admin.runs[0]
    assert (name, body, parent) == ("job", '{"k":1}', None)
    assert meta[SCHEDULE_KEY] == "s1" and meta[OCCURRENCE_KEY] == fire.occurrence_id
    assert meta[NOMINAL_KEY] == meta[DUE_KEY] == nominal.isoformat()  # lateness counts from it
    assert book.calls == [(fire.occurrence_id, "run-1")]


async def test_disarm_deletes_only_this_schedule_s_pending_links() -> None:
    def row(rid: str, workflow: str, sid: str, fired: str | None = None) -> Any:
        return SimpleNamespace(
            metadata=SimpleNamespace(id=rid),
            workflow_name=workflow,
            workflow_run_id=fired,
            additional_metadata={SCHEDULE_KEY: sid},
        )

    rows = [
        row("a", "ns_owlclaw-schedule", "s1"),
        row("b", "ns_owlclaw-schedule", "s1", fired="run-9"),  # fired already
        row("c", "other_owlclaw-schedule", "s1"),  # another namespace
        row("d", "ns_job", "s1"),  # not a link
        row("e", "ns_owlclaw-schedule", "s2"),  # another schedule
    ]
    chain, _, scheduled, _ = _chain(rows)
    assert await chain.disarm("s1") == 1
    assert scheduled.deleted == ["a"]
