"""The demo's tasks as a worker app, for backends whose workers run in their
own process: ``owlclaw-scheduler worker owlclaw.scheduler.demo_app:scheduler``."""

from owlclaw.scheduler.demo import declare_demo_tasks
from owlclaw.scheduler.registry import create_scheduler

scheduler = declare_demo_tasks(create_scheduler())
