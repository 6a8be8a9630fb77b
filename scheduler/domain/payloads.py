"""What a job's payload must be to be taken at the door: no larger than the scheduler's limit,
and for a job whose radixconfig gives it a `payload.path`. Every payload of a create is checked
before anything is made."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scheduler.errors import InvalidError, PayloadTooLargeError
from scheduler.models import DEFAULT_MAX_PAYLOAD_BYTES

MIB = 1024 * 1024


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

    def check(self, payloads: Iterable[tuple[str, str | None]]) -> None:
        """`payloads`: each job's (field, payload), the field naming it in errors
        (`jobScheduleDescriptions[3].payload` in a batch). 413 for the first one too large."""
        for where, payload in payloads:
            if not payload:
                continue
            size = utf8_size(payload)
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
