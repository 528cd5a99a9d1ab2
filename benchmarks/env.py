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
    _engine_error: Exception | None = field(default=None, repr=False)

    def engine(self) -> EngineSession:
        """The one engine + worker for this run; started on first call.

        If it cannot start, every later call raises the same error at once
        (each engine benchmark then reports it), instead of trying again.
        """
        if self._engine_error is not None:
            raise RuntimeError(f"the Hatchet engine could not be started: {self._engine_error}")
        if self._engine is None:
            from benchmarks.engine import EngineSession

            try:
                self._engine = EngineSession(self.workdir / "engine").start()
            except Exception as exc:
                self._engine_error = exc
                raise
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
