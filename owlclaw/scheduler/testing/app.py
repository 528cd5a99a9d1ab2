"""A worker app with the conformance tasks, on the configured backend:
``owlclaw-scheduler worker owlclaw.scheduler.testing.app:scheduler``."""

from owlclaw.scheduler.registry import create_scheduler
from owlclaw.scheduler.testing.tasks import register_conformance_tasks

scheduler = register_conformance_tasks(create_scheduler())
