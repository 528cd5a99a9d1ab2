"""The ``owlclaw_scheduler`` fixture comes from the package's pytest11 entry point."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from owlclaw.backends.memory import MemoryScheduler
from owlclaw.scheduler import TaskContext, TaskState

ROOT = Path(__file__).resolve().parents[2]


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


# --------------------------------------------------------------------------
# The plugin loads with and without pytest-asyncio: run pytest in a subprocess
# on a one-test file, with entry points off so only the plugins named load.

USES_FIXTURE = """
async def test_uses_it(owlclaw_scheduler):
    assert owlclaw_scheduler.capabilities.virtual_time
    await owlclaw_scheduler.advance(60)
"""


def _pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_it.py").write_text(USES_FIXTURE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this project's ini (asyncio_mode)
    args = ["-p", "owlclaw.backends.memory.pytest_plugin", *options]
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_it.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugin_module_imports_without_pytest_asyncio() -> None:
    code = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"  # any import of it fails
        "import owlclaw.backends.memory.pytest_plugin as p\n"
        "assert p.INSTALL_HINT\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_fixture_works_with_pytest_asyncio(tmp_path: Path) -> None:
    result = _pytest(tmp_path, "-p", "pytest_asyncio.plugin", "-o", "asyncio_mode=auto")
    assert result.returncode == 0, result.stdout + result.stderr


def test_fixture_without_pytest_asyncio_says_what_to_install(tmp_path: Path) -> None:
    result = _pytest(tmp_path)
    assert result.returncode != 0
    assert "pip install 'owlclaw-scheduler[test]'" in result.stdout, result.stdout + result.stderr


def test_entry_point_names_the_memory_plugin() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    plugins = pyproject["project"]["entry-points"]["pytest11"]
    assert plugins == {"owlclaw_scheduler_memory": "owlclaw_scheduler_pytest"}


def test_plugin_loads_when_a_regular_owlclaw_package_hides_ours(tmp_path: Path) -> None:
    """OwlClaw's source checkout: its regular ``owlclaw`` package comes first
    on the path. pytest starts, tests that do not use the fixture pass, and
    the fixture says how to fix the path."""
    shadow = tmp_path / "checkout" / "owlclaw"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('"""OwlClaw."""\n')
    (tmp_path / "test_it.py").write_text(
        "def test_plain():\n    pass\n\n\ndef test_fixture(owlclaw_scheduler):\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(
        os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=f"{shadow.parent}{os.pathsep}{ROOT}"
    )

    def run(*options: str) -> str:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "owlclaw_scheduler_pytest",
        ]
        done = subprocess.run(
            [*command, *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        return f"exit {done.returncode}\n{done.stdout}{done.stderr}"

    out = run()
    assert "1 passed, 1 error" in out, out
    assert "hides owlclaw-scheduler's" in out and "extend_path" in out, out
    # with the documented line in its __init__.py, the fixture works again
    (shadow / "__init__.py").write_text("__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (tmp_path / "test_it.py").write_text(USES_FIXTURE)
    out = run("-p", "pytest_asyncio.plugin", "-o", "asyncio_mode=auto")
    assert out.startswith("exit 0"), out
