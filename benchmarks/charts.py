"""PNG charts (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["boxes", "cdf", "lines"]


def _save(fig: Figure, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def cdf(
    path: Path,
    title: str,
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    *,
    logx: bool = False,
    style: Mapping[str, tuple[int, str]] | None = None,
) -> str:
    """Cumulative distributions, one line per series (values already in display units).

    With ``logx`` values below 0.1 are drawn at 0.1. ``style`` as in :func:`lines`.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for n, (label, values) in enumerate(series.items()):
        if not values:
            continue
        ordered = sorted(max(v, 0.1) for v in values) if logx else sorted(values)
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        colour, dash = (style or {}).get(label, (n, "-"))
        ax.step(
            ordered, ys, where="post", color=f"C{colour}", linestyle=dash, label=f"{label} (n={len(ordered)})"
        )
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def boxes(path: Path, title: str, groups: Mapping[str, Sequence[float]], ylabel: str) -> str:
    """Box plots (whiskers at p1/p99), one box per group."""
    labels = [k for k, v in groups.items() if v]
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4))
    ax.boxplot([groups[k] for k in labels], whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def lines(
    path: Path,
    title: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    *,
    logx: bool = False,
    logy: bool = False,
    style: Mapping[str, tuple[int, str]] | None = None,
) -> str:
    """One line with markers per series over the same x values.

    ``style`` maps a label to (colour index, line style), e.g. to pair series.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, (label, ys) in enumerate(series.items()):
        colour, dash = (style or {}).get(label, (n, "-"))
        ax.plot(xs, ys, marker="o", linestyle=dash, color=f"C{colour}", label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)
