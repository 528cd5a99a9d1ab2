"""Schedule rules, independent of any backend: the validated ``ScheduleSpec``,
its nominal times across time zones and DST (``next_occurrence``,
``occurrences``), jitter (``fire_time``), occurrence ids, catch-up after
downtime (``catch_up``), and pauses and skips (``preview``).

The rules are written down in docs/schedules.md.
"""

from owlclaw.scheduler.schedules.occurrences import next_occurrence, occurrences
from owlclaw.scheduler.schedules.policy import (
    DEFAULT_COUNT_LIMIT,
    DEFAULT_MAX_CATCHUP_RUNS,
    CatchUp,
    apply_pauses_and_skips,
    catch_up,
    fire_time,
    occurrence_id,
    preview,
)
from owlclaw.scheduler.schedules.spec import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_COALESCE,
    DEFAULT_OVERLAP,
    MAX_JITTER_SECONDS,
    Overlap,
    ScheduleSpec,
)

__all__ = [
    "DEFAULT_CATCHUP_WINDOW",
    "DEFAULT_COALESCE",
    "DEFAULT_COUNT_LIMIT",
    "DEFAULT_MAX_CATCHUP_RUNS",
    "DEFAULT_OVERLAP",
    "MAX_JITTER_SECONDS",
    "CatchUp",
    "Overlap",
    "ScheduleSpec",
    "apply_pauses_and_skips",
    "catch_up",
    "fire_time",
    "next_occurrence",
    "occurrence_id",
    "occurrences",
    "preview",
]
