"""What readiness knows beyond the view: the watches that are failing now, and why."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field

from scheduler.backends.base import Kind


@dataclass
class Health:
    problems: dict[Kind, str] = field(default_factory=dict)

    def watch_ok(self, kind: Kind) -> None:
        self.problems.pop(kind, None)

    def watch_failed(self, kind: Kind, reason: str) -> None:
        self.problems[kind] = reason

    def not_ready_reason(self, synced: Set[Kind]) -> str | None:
        """`synced`: the kinds the view has listed (the view keeps that, not us)."""
        if self.problems:
            return "; ".join(
                f"watch of {k.value}: {v}"
                for k, v in sorted(self.problems.items(), key=lambda item: item[0].value)
            )
        missing = [k.value for k in Kind if k not in synced]
        if missing:
            return f"the view of {', '.join(missing)} has not synced yet"
        return None
