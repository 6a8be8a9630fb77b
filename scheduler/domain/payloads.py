"""What a job's payload must be to be taken at the door: no larger than the scheduler's limit, for
a job whose radixconfig gives it a `payload.path`, and, when the job has a payload schema, JSON
that satisfies it. Every payload of a create is checked before anything is made."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Self

from scheduler.errors import InvalidError, PayloadTooLargeError
from scheduler.models import DEFAULT_MAX_PAYLOAD_BYTES
from scheduler.payload_schema import PayloadSchema, Violation
from scheduler.radixconfig import JobDefinition

MIB = 1024 * 1024
# What a 422 lists: the first causes of each payload and of all, then how many more.
MAX_CAUSES_PER_PAYLOAD = 20
MAX_CAUSES = 100
# Counting stops here: each problem found costs (a payload wrong everywhere has 100,000s).
MAX_COUNTED_PER_PAYLOAD = 1000


def described_size(size: int) -> str:
    """`1048576` -> `1 MiB`, `1500` -> `1500 bytes`: a limit as an operator set it."""
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size} bytes"


def utf8_size(text: str) -> int:
    """The size of `text` in UTF-8, without a copy of a large ASCII payload (CPython knows a
    str is ASCII without looking at it)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class PayloadRules:
    job: str  # the radixconfig job's name, for errors
    payload_path: str | None  # None: the job takes no payload
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    schema: PayloadSchema | None = None

    @classmethod
    def of(cls, definition: JobDefinition, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Self:
        return cls(definition.name, definition.payload_path, max_bytes, definition.payload_schema)

    def check(self, payloads: Iterable[tuple[str, str | None]]) -> None:
        """`payloads`: each job's (field, payload), the field naming it in errors
        (`jobScheduleDescriptions[3].payload` in a batch). 413 for the first one too large;
        then 422 naming every payload that breaks the schema, and how."""
        listed = list(payloads)
        for where, payload in listed:
            self._check_size(where, payload)
        if self.schema is not None:
            self._check_schema(self.schema, listed)

    def _check_size(self, where: str, payload: str | None) -> None:
        if not payload:
            return
        # UTF-8 takes at most 4 bytes a character: most payloads need no encoding to measure.
        size = len(payload) if len(payload) * 4 <= self.max_bytes else utf8_size(payload)
        if size > self.max_bytes:
            raise PayloadTooLargeError(
                f"{where} is too large: {size} bytes; at most {self.max_bytes} bytes "
                f"({described_size(self.max_bytes)})"
            )
        if self.payload_path is None:
            raise InvalidError(
                f"{where}: job {self.job} has no payload.path in the radixconfig, "
                "so it cannot take a payload"
            )

    def _check_schema(
        self, schema: PayloadSchema, payloads: Sequence[tuple[str, str | None]]
    ) -> None:
        causes: list[dict[str, Any]] = []
        lines: list[str] = []
        broken = unlisted = 0
        uncounted = False  # a payload had more problems than were counted
        for where, payload in payloads:
            found = list(islice(schema.violations(payload), MAX_COUNTED_PER_PAYLOAD + 1))
            if not found:
                continue
            broken += 1
            uncounted |= len(found) > MAX_COUNTED_PER_PAYLOAD
            shown = found[: min(MAX_CAUSES_PER_PAYLOAD, MAX_CAUSES - len(causes))]
            causes.extend(_cause(where, violation) for violation in shown)
            lines.extend(_line(where, violation) for violation in shown)
            unlisted += min(len(found), MAX_COUNTED_PER_PAYLOAD) - len(shown)
        if not broken:
            return
        if unlisted:
            lines.append(f"and {'more than ' if uncounted else ''}{unlisted} more")
        what = (
            "the payload does not"
            if len(payloads) == 1
            else f"{broken} of {len(payloads)} payloads do not"
        )
        raise InvalidError(
            f"{what} satisfy the payload schema of job {self.job}: " + "; ".join(lines), causes
        )


def _cause(where: str, violation: Violation) -> dict[str, Any]:
    return {
        "field": where,
        "pointer": violation.pointer,
        "rule": violation.rule,
        "value": violation.value,
        "message": violation.message,
    }


def _line(where: str, violation: Violation) -> str:
    """`jobScheduleDescriptions[1].payload/items/0/size: 'minimum': -1 is less than ...`"""
    return f"{where}{violation.pointer}: {violation.rule!r}: {violation.message}"
