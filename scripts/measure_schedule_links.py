"""Measure on a private hatchet-lite: how late a one-off scheduled run created
1-5 s ahead starts, and the two-hop lateness (link start -> a user run it
triggers, outside the link's context -> that run's start).

python scripts/measure_schedule_links.py  (prints a JSON summary; ROUNDS=8 by default 6)
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hatchet_sdk import Context, TriggerWorkflowOptions

OUT = Path(os.environ.get("MEASURE_OUT", "/tmp/owlclaw-measure-links/events.jsonl"))


def sdk(env: dict[str, str]):
    from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet

    return Hatchet(
        config=ClientConfig(
            token=env["TOKEN"],
            host_port=env["HOST_PORT"],
            server_url=env["SERVER_URL"],
            namespace="measure",
            tls_config=ClientTLSConfig(strategy="none"),
        )
    )


def worker_main() -> None:
    h = sdk(dict(os.environ))

    def note(kind: str, ctx: Context, extra: dict[str, Any]) -> None:
        with OUT.open("a") as f:
            f.write(json.dumps({"kind": kind, "t": time.time(), **extra}) + "\n")

    @h.task(name="link", input_validator=dict[str, Any])
    async def link(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        note("link", ctx, payload)
        admin = h._client.admin
        opts = TriggerWorkflowOptions(additional_metadata={"at": payload["at"]})
        run = contextvars.Context().run
        await asyncio.to_thread(run, admin.run_workflow, "user", json.dumps(payload), opts)
        return {}

    @h.task(name="user", input_validator=dict[str, Any])
    async def user(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        note("user", ctx, payload)
        return {}

    h.worker("measure", slots=20, workflows=[link, user]).start()


async def client_main(env: dict[str, str], rounds: int) -> None:
    from hatchet_sdk.types.trigger import ScheduleTriggerWorkflowOptions

    h = sdk(env)
    admin = h._client.admin
    n = 0
    for _round in range(rounds):
        for ahead in (1, 2, 3, 4, 5):
            at = datetime.now(UTC) + timedelta(seconds=ahead)
            payload = {"at": at.timestamp(), "ahead": ahead, "i": n}
            await admin.aio_schedule_workflow(
                "link", [at], json.dumps(payload), ScheduleTriggerWorkflowOptions(additional_metadata={})
            )
            n += 1
            await asyncio.sleep(1.3)
    deadline = time.time() + 90
    while time.time() < deadline:
        users = [json.loads(x) for x in OUT.read_text().splitlines() if '"user"' in x] if OUT.exists() else []
        if len(users) >= n:
            break
        await asyncio.sleep(1)


def summarize() -> dict:
    rows = [json.loads(x) for x in OUT.read_text().splitlines()]
    links = {r["i"]: r for r in rows if r["kind"] == "link"}
    users = {r["i"]: r for r in rows if r["kind"] == "user"}
    by_ahead: dict[int, list[float]] = {}
    for r in links.values():
        by_ahead.setdefault(r["ahead"], []).append(r["t"] - r["at"])
    hop = [users[i]["t"] - links[i]["t"] for i in users if i in links]
    total = [users[i]["t"] - users[i]["at"] for i in users]

    def s(xs: list[float]) -> dict:
        xs = sorted(xs)
        return {
            "n": len(xs),
            "min": round(xs[0], 3),
            "p50": round(statistics.median(xs), 3),
            "max": round(xs[-1], 3),
        }

    return {
        "link_late_by_ahead": {k: s(v) for k, v in sorted(by_ahead.items())},
        "link_late_all": s([x for v in by_ahead.values() for x in v]),
        "second_hop": s(hop),
        "nominal_to_user_start": s(total),
        "links": len(links),
        "users": len(users),
    }


def main() -> None:
    from owlclaw.backends.hatchet.local import LocalEngine, LocalPostgres

    rounds = int(os.environ.get("ROUNDS", "6"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.unlink(missing_ok=True)
    pg = LocalPostgres().start()
    engine = LocalEngine(pg.database_url("hatchet"), startup_timeout=180)
    try:
        conn = engine.start()
        env = {"TOKEN": conn.token, "HOST_PORT": conn.host_port, "SERVER_URL": conn.server_url}
        wenv = {**os.environ, **env}
        log = open(OUT.parent / "worker.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, __file__, "worker"], env=wenv, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            h = sdk(env)
            deadline = time.time() + 120
            while time.time() < deadline and not any(
                w.status == "ACTIVE" for w in (h.workers.list().rows or [])
            ):
                time.sleep(1)
            asyncio.run(client_main(env, rounds))
        finally:
            proc.terminate()
            proc.wait(30)
        print(json.dumps(summarize(), indent=1))
    finally:
        engine.stop()
        pg.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker_main()
    else:
        main()
