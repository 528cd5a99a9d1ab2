"""The ``owlclaw_scheduler`` fixture comes from the package's pytest11 entry point."""

from typing import Any

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler import TaskContext, TaskState


async def test_fixture_gives_a_running_virtual_scheduler(owlclaw_scheduler: MemoryScheduler) -> None:
    @owlclaw_scheduler.task(durable=True)
    async def heartbeat(payload: dict[str, Any], ctx: TaskContext) -> str:
        await ctx.sleep(30 * 60)
        return "awake"

    task_id = await owlclaw_scheduler.run_task("heartbeat")
    await owlclaw_scheduler.advance(29 * 60)
    assert (await owlclaw_scheduler.get_task_status(task_id)).state is TaskState.RUNNING
    await owlclaw_scheduler.advance(60)
    info = await owlclaw_scheduler.get_task_status(task_id)
    assert (info.state, info.result) == (TaskState.SUCCEEDED, "awake")


async def test_fixture_takes_an_apps_tasks(owlclaw_scheduler: MemoryScheduler) -> None:
    app = MemoryScheduler()

    @app.task(name="remind")
    async def remind(payload: dict[str, Any], ctx: TaskContext) -> str:
        await ctx.scheduler.schedule_task("remind", payload, delay_seconds=3600)
        return payload["user"]

    owlclaw_scheduler.add_tasks(app.tasks.values())
    first = await owlclaw_scheduler.run_task("remind", {"user": "ada"})
    assert (await owlclaw_scheduler.wait_for_task(first)).result == "ada"
    [pending] = await owlclaw_scheduler.list_scheduled_tasks(task_name="remind")
    assert pending.scheduled_at is not None
    assert (pending.scheduled_at - owlclaw_scheduler.clock.now()).total_seconds() == 3600
