"""Test helpers shipped with the package: the conformance suite every backend
passes, the tasks it runs, and (as a pytest plugin) ready-made fixtures."""

from owlclaw.scheduler.testing.conformance import (
    SchedulerConformance,
    SchedulerFaultConformance,
    VirtualTimeConformance,
)
from owlclaw.scheduler.testing.tasks import register_conformance_tasks

__all__ = [
    "SchedulerConformance",
    "SchedulerFaultConformance",
    "VirtualTimeConformance",
    "register_conformance_tasks",
]
