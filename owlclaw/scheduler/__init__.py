"""owlclaw's scheduler: one protocol, pluggable backends.

from owlclaw.scheduler import create_scheduler, TaskContext

scheduler = create_scheduler()      # backend from owlclaw.yaml / env

@scheduler.task(retries=2)
async def remind(payload: dict, ctx: TaskContext) -> dict: ...
"""

from owlclaw.scheduler import errors
from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.errors import NonRetryableError
from owlclaw.scheduler.models import CronInfo, ScheduleInfo, TaskContext, TaskFailure, TaskInfo, TaskState
from owlclaw.scheduler.protocol import Capabilities, Scheduler
from owlclaw.scheduler.registry import available_backends, create_scheduler
from owlclaw.scheduler.schedules import Overlap, ScheduleSpec

__all__ = [
    "Capabilities",
    "CronInfo",
    "NonRetryableError",
    "Overlap",
    "ScheduleInfo",
    "ScheduleSpec",
    "Scheduler",
    "SchedulerConfig",
    "TaskContext",
    "TaskFailure",
    "TaskInfo",
    "TaskState",
    "available_backends",
    "create_scheduler",
    "errors",
]
