"""Adapters that let OwlClaw's existing code run on owlclaw-scheduler.

``owlclaw.integrations.hatchet`` offers the ``HatchetClient``/``HatchetConfig``
API OwlClaw already calls, on any backend (Hatchet, or memory for tests).
"""

from owlclaw.integrations.hatchet import HatchetClient, HatchetConfig

__all__ = ["HatchetClient", "HatchetConfig"]
