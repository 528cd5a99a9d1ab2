"""The in-memory backend: a faithful fake of the engine for tests and demos."""

from owlclaw.backends.memory.backend import MemoryScheduler
from owlclaw.backends.memory.config import MemoryConfig
from owlclaw.scheduler.clock import VirtualClock

__all__ = ["MemoryConfig", "MemoryScheduler", "VirtualClock"]
