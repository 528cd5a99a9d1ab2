"""owlclaw-scheduler installs beside OwlClaw's own ``owlclaw`` distribution.

OwlClaw's ``owlclaw`` and ``owlclaw.integrations`` are regular packages (with
``__init__.py``). A package shaped like it is built here and installed with
this one into fresh virtual environments, as wheels and editable, in both
orders. Each time: no file of either distribution is overwritten (every file
matches its RECORD hash), OwlClaw's own imports work, ``owlclaw.scheduler``
and the drop-in import, and OwlClaw's one-line switch
(``owlclaw/integrations/hatchet.py`` re-exporting the drop-in) gives our
client. Editable OwlClaw needs the two ``extend_path`` lines the migration
guide documents. Needs PyPI (pip builds with hatchling, and installs the
dependencies).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXTEND = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"

CHECK = textwrap.dedent(
    """
    import base64, hashlib, importlib.metadata as md
    for name in ("owlclaw", "owlclaw-scheduler"):
        dist = md.distribution(name)
        for f in dist.files or []:
            if f.hash is None:
                continue
            data = f.locate().read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.new(f.hash.mode, data).digest()).rstrip(b"=").decode()
            assert digest == f.hash.value, f"{f} of {name} was overwritten"
    from owlclaw.integrations import LLMClient            # OwlClaw's own
    assert LLMClient.__module__ == "owlclaw.integrations.llm"
    import owlclaw.scheduler, owlclaw.backends.memory     # ours
    from owlclaw.integrations.hatchet_client import HatchetClient
    from owlclaw.integrations.hatchet import HatchetClient as Switched   # OwlClaw's switch
    assert Switched is HatchetClient
    print("ok")
    """
)


def owlclaw_shaped(base: Path) -> Path:
    """A distribution named ``owlclaw`` laid out like OwlClaw's."""
    project = base / "owlclaw-app"
    package = project / "owlclaw"
    (package / "integrations").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling>=1.21"]
            build-backend = "hatchling.build"

            [project]
            name = "owlclaw"
            version = "9.0"

            [tool.hatch.build.targets.wheel]
            packages = ["owlclaw"]
            """
        )
    )
    # the documented lines, so that an editable (source) OwlClaw sees our package
    (package / "__init__.py").write_text('"""OwlClaw."""\n' + EXTEND)
    (package / "integrations" / "__init__.py").write_text(
        EXTEND + "from owlclaw.integrations.llm import LLMClient\n"
    )
    (package / "integrations" / "llm.py").write_text("class LLMClient:\n    pass\n")
    # OwlClaw's switch: its hatchet module re-exports the drop-in
    (package / "integrations" / "hatchet.py").write_text(
        "from owlclaw.integrations.hatchet_client import HatchetClient, HatchetConfig  # noqa: F401\n"
    )
    return project


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("packaging")
    app = owlclaw_shaped(base)
    out = base / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, app)
    return {
        "owlclaw-scheduler": next(out.glob("owlclaw_scheduler-*.whl")),
        "owlclaw": next(out.glob("owlclaw-9.0-*.whl")),
        "owlclaw-scheduler (editable)": ROOT,
        "owlclaw (editable)": app,
    }


@pytest.mark.parametrize(
    "first, second",
    [
        ("owlclaw", "owlclaw-scheduler"),
        ("owlclaw-scheduler", "owlclaw"),
        ("owlclaw (editable)", "owlclaw-scheduler (editable)"),
        ("owlclaw-scheduler (editable)", "owlclaw (editable)"),
        ("owlclaw (editable)", "owlclaw-scheduler"),
        ("owlclaw-scheduler (editable)", "owlclaw"),
    ],
)
def test_both_install_in_either_order(
    wheels: dict[str, Path], tmp_path: Path, first: str, second: str
) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    for name in (first, second):
        where = wheels[name]
        spec = ["-e", where] if "editable" in name else [where]
        run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec)
    assert run(python, "-c", CHECK, cwd=tmp_path).strip() == "ok"
