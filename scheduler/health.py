"""What readiness knows: whether each watch has synced and whether the backend last answered."""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.backends.base import Kind


@dataclass
class Health:
    synced: set[Kind] = field(default_factory=set)
    problems: dict[Kind, str] = field(default_factory=dict)

    def watch_ok(self, kind: Kind) -> None:
        self.synced.add(kind)
        self.problems.pop(kind, None)

    def watch_failed(self, kind: Kind, reason: str) -> None:
        self.problems[kind] = reason

    def not_ready_reason(self) -> str | None:
        if self.problems:
            return "; ".join(
                f"watch of {k.value}: {v}"
                for k, v in sorted(self.problems.items(), key=lambda item: item[0].value)
            )
        missing = [k.value for k in Kind if k not in self.synced]
        if missing:
            return f"the view of {', '.join(missing)} has not synced yet"
        return None
