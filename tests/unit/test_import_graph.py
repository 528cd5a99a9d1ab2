"""Layering, read from the source: ``owlclaw.scheduler`` imports no backend (not
even inside a function), the OwlClaw adapter imports no Hatchet module, and no
two ``owlclaw`` modules import each other, directly or through others (imports
inside functions count; those only for type checkers do not)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "owlclaw"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool, typing_only: bool = True) -> set[str]:
    """Modules ``path`` imports; ``from pkg import sub`` counts as ``pkg.sub`` when
    that is a module (Python imports the submodule; pkg may still be initialising).
    With ``top_level_only``, imports run when the module loads: not those inside
    functions. Without ``typing_only``, imports under ``if TYPE_CHECKING`` are left out."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{alias.name}" for alias in node.names}
                found.update(subs & MODULES.keys() or {node.module})
            elif (
                (top_level_only or not typing_only)
                and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)
            ):
                continue
            if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list):
                    visit(
                        [c for c in child if isinstance(c, ast.stmt)]
                        + [s for h in child if isinstance(h, ast.ExceptHandler) for s in h.body]
                    )

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _offenders(package: str, forbidden: str) -> list[str]:
    return sorted(
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name == package or name.startswith(package + ".")
        for imported in _imports(path, top_level_only=False)
        if imported == forbidden or imported.startswith(forbidden + ".")
    )


def test_the_scheduler_package_imports_no_backend() -> None:
    assert _offenders("owlclaw.scheduler", "owlclaw.backends") == []


def test_the_owlclaw_adapter_imports_no_hatchet_module() -> None:
    assert _offenders("owlclaw.integrations", "owlclaw.backends") == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            walk(start, [start], done)
    return cycles


def test_modules_import_each_other_without_cycles() -> None:
    graph = {
        name: _imports(path, top_level_only=False, typing_only=False) & MODULES.keys() - {name}
        for name, path in MODULES.items()
    }
    assert _cycles(graph) == []


def test_a_cycle_through_an_import_inside_a_function_is_found() -> None:
    # the check itself: memory/backend <-> memory/faults was such a cycle
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"]]
