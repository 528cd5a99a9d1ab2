"""Every ```python block of docs/testing.md, run as tests: a stale page fails here.

The blocks run in order in this module's namespace, as the page reads: later
blocks use the app the first one declares. Tracebacks point at the page's lines.
"""

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks(text: str) -> list[tuple[int, str]]:
    """(line of the block's first code line, code) for each python block."""
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in _BLOCK.finditer(text)]


def _run_blocks() -> list[str]:
    found: list[str] = []
    namespace: dict[str, Any] = globals()
    for line, code in _blocks(DOC.read_text(encoding="utf-8")):
        before = set(namespace)
        exec(compile("\n" * line + code, str(DOC), "exec"), namespace)
        for name in sorted(set(namespace) - before):
            if name.startswith("test_"):
                found.append(name)
        redefined = [n for n in re.findall(r"^(?:async )?def (test_\w+)", code, re.M) if n in before]
        assert not redefined, f"{DOC}: {redefined} defined twice; one would hide the other"
    return found


DOC_TESTS = _run_blocks()


def test_every_example_on_the_page_is_collected() -> None:
    text = DOC.read_text(encoding="utf-8")
    defined = re.findall(r"^(?:async )?def (test_\w+)", text, re.MULTILINE)
    assert sorted(DOC_TESTS) == sorted(defined)
    assert len(DOC_TESTS) >= 7
    for name in DOC_TESTS:
        assert callable(globals()[name])


def test_blocks_are_found_with_their_line_numbers() -> None:
    text = "intro\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert _blocks(text) == [(3, "x = 1\n"), (10, "y = 2\n")]


def test_architecture_shows_the_error_tree_of_the_errors_module() -> None:
    from owlclaw.scheduler import errors

    assert errors.__doc__ is not None
    tree = errors.__doc__.split("::\n", 1)[1].strip("\n")
    page = (DOC.parent / "architecture.md").read_text(encoding="utf-8")
    assert "\n".join(line[4:] for line in tree.splitlines()) in page, (
        "docs/architecture.md: copy the error tree from owlclaw/scheduler/errors.py's docstring"
    )


def test_python_blocks_of_the_other_pages_compile() -> None:
    for name in ("architecture.md", "backends.md", "hatchet.md", "conformance.md"):
        path = DOC.parent / name
        for line, code in _blocks(path.read_text(encoding="utf-8")):
            compile("\n" * line + code, str(path), "exec")
