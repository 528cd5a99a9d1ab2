"""What every benchmark gets: where charts go, and the shared engine (started on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.engine import EngineSession

__all__ = ["Env"]


@dataclass
class Env:
    chart_dir: Path
    workdir: Path
    _engine: EngineSession | None = field(default=None, repr=False)

    def engine(self) -> EngineSession:
        """The one engine + worker for this run; started on first call."""
        if self._engine is None:
            from benchmarks.engine import EngineSession

            self._engine = EngineSession(self.workdir / "engine").start()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
