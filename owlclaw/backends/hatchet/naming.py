"""Names in the engine: a namespace's prefix, and the names owlclaw reserves.

Every owlclaw task is the Hatchet workflow ``<namespace>_<task name>``. The
engine's listings return every namespace of the tenant, so rows are kept by
that prefix and reported without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from owlclaw.scheduler.errors import TaskDefinitionError
from owlclaw.scheduler.models import TaskOptions

__all__ = ["DECLARED_CRON_NAME", "LINK", "RESERVED", "TOMBSTONE", "Names"]

TOMBSTONE = "owlclaw-cancelled"  # a workflow no worker serves: its cancelled runs record cancelled schedules
LINK = "owlclaw-schedule"  # the internal workflow whose scheduled runs chain a schedule's occurrences
RESERVED = (TOMBSTONE, LINK)  # workflows owlclaw defines itself: no task may take these names
DECLARED_CRON_NAME = "owlclaw-declared"  # the name of a cron declared with @task(cron=...)


@dataclass(frozen=True)
class Names:
    """The workflow names of one namespace."""

    namespace: str

    @property
    def prefix(self) -> str:
        ns = self.namespace.lower()
        return ns if ns.endswith("_") else ns + "_"

    def workflow(self, task_name: str) -> str:
        """The engine's name for a task of this namespace."""
        return self.prefix + task_name

    def strip(self, workflow_name: str | None) -> str | None:
        """The task name of a workflow of this namespace; None for any other."""
        if not workflow_name or not workflow_name.startswith(self.prefix):
            return None
        return workflow_name[len(self.prefix) :]

    def check(self, options: TaskOptions) -> None:
        """Refuse task names the engine would confuse with ours or another's."""
        if options.name in RESERVED:
            raise TaskDefinitionError(
                f"{options.name!r} is reserved by the Hatchet backend; pick another name"
            )
        if options.name.lower().startswith(self.prefix):
            bare = options.name[len(self.prefix) :]
            raise TaskDefinitionError(
                f"task name {options.name!r} starts with this namespace's prefix {self.prefix!r}, which "
                f"the Hatchet SDK then does not add again; drop the prefix, e.g. {bare!r}"
            )
