"""Results, the console tables, machine facts and the Markdown report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from owlclaw.scheduler.clock import utc_now

__all__ = ["Result", "Table", "machine_facts", "print_result", "write_markdown"]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self) -> str:
        cells = [self.columns, *self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        out = [self.title]
        for n, row in enumerate(cells):
            out.append(
                "  "
                + "  ".join(
                    c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if n == 0:
                out.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(out)


@dataclass
class Result:
    """What one benchmark found: tables, charts (file names), text and headline lines."""

    name: str
    title: str
    method: str = ""
    tables: list[Table] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # key numbers, for tests and tools
    seconds: float = 0.0
    error: str | None = None


def print_result(result: Result) -> None:
    print(f"\n== {result.name}: {result.title} ({result.seconds:.1f}s wall)")
    if result.error:
        print(f"   FAILED: {result.error}")
    for table in result.tables:
        print(table.text())
    for line in result.headlines:
        print(f"   * {line}")
    sys.stdout.flush()


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _postgres_version() -> str:
    try:
        from owlclaw.backends.hatchet.local.postgres import find_postgres_bin_dir

        out = subprocess.run(
            [str(find_postgres_bin_dir() / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return f"not found ({type(exc).__name__})"


def machine_facts() -> dict[str, str]:
    from owlclaw.backends.hatchet.local.engine import ENGINE_VERSION

    return {
        "date (UTC)": utc_now().strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": _ram(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": _postgres_version(),
        "Hatchet engine": f"hatchet-lite {ENGINE_VERSION} (built locally from source)",
        "hatchet-sdk": _version("hatchet-sdk"),
        "owlclaw-scheduler": _version("owlclaw-scheduler"),
        "APScheduler": _version("apscheduler"),
    }


def write_markdown(
    results: list[Result],
    out: Path,
    *,
    facts: dict[str, str],
    sizes_label: str,
    command: str,
    intro: str,
    closing: list[str],
) -> None:
    parts = [
        "# Benchmarks",
        "",
        intro,
        "",
        f"Command: `{command}` ({sizes_label}). Total wall time: "
        f"{sum(r.seconds for r in results) / 60:.1f} min.",
        "",
        "| machine and versions | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        "",
        "| benchmark | wall time |",
        "| --- | --- |",
        *[f"| {r.name}: {r.title} | {r.seconds:.0f} s{' (failed)' if r.error else ''} |" for r in results],
    ]
    for result in results:
        parts += ["", f"## {result.title}", ""]
        if result.method:
            parts += [result.method, ""]
        if result.error:
            parts += ["**This benchmark failed:**", "", "```", result.error, "```", ""]
        for table in result.tables:
            parts += [table.markdown(), ""]
        for chart in result.charts:
            parts += [f"![{result.name}]({out.stem}/{chart})", ""]
        for note in result.notes:
            parts += [note, ""]
    parts += ["", "## Headline ratios", ""]
    parts += [f"- {line}" for r in results for line in r.headlines]
    parts += ["", *closing, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
