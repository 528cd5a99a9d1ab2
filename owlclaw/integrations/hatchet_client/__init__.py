"""OwlClaw's Hatchet client API (``HatchetClient``, ``HatchetConfig``) on any
owlclaw-scheduler backend: Hatchet in production, memory in tests.

A package of its own, inside ``owlclaw.integrations``, so that this
distribution installs beside OwlClaw's (whose ``owlclaw`` and
``owlclaw.integrations`` are regular packages) without a file of either
overwriting the other's. OwlClaw switches with one line in its
``owlclaw/integrations/hatchet.py``; see docs/migrating-from-owlclaw-hatchet-client.md.
"""

from owlclaw.integrations.hatchet_client.client import (
    ENV_FALLBACKS,
    ClientNotConnectedError,
    HatchetClient,
    HatchetConfig,
    HatchetTaskContext,
    TaskNotDeclaredError,
)

__all__ = [
    "ENV_FALLBACKS",
    "ClientNotConnectedError",
    "HatchetClient",
    "HatchetConfig",
    "HatchetTaskContext",
    "TaskNotDeclaredError",
]
