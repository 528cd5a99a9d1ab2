"""What a benchmark task notes of each execution: one JSON line per execution
appended to the file named by ``BENCH_PROBE_FILE``, so a benchmark can count
executions (exactly once?) without listing thousands of runs through the API."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["PROBE_ENV", "note_probe"]

PROBE_ENV = "BENCH_PROBE_FILE"


def note_probe(record: dict[str, Any]) -> dict[str, Any]:
    path = os.environ.get(PROBE_ENV)
    if path:
        # one short write per line with O_APPEND: lines from concurrent runs do not interleave
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    return record
