"""A payload larger than one Secret holds: its parts (Secrets of at most 512 KiB each, as Radix
splits a batch's payloads) and the pod's pieces that put it together again before the job's
container starts: an init container running the scheduler's own image
(`python -m scheduler.assemble_payload`), the parts projected into it, and an emptyDir that the
job's container mounts read-only at `payload.path`.

Pure: names, slices and manifests' pieces; no I/O, no copy of the payload.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scheduler.models import SECRET_CAPACITY_BYTES

PART_BYTES = 512 * 1024
# Part Secrets being created at once, across all creations of a scheduler: each holds its
# part's base64 text (700 KB) while in flight.
PARTS_IN_FLIGHT = 8
PARTS_VOLUME = "job-payload-parts"
ASSEMBLER_NAME = "assemble-payload"
ASSEMBLER_MODULE = "scheduler.assemble_payload"
# Where the init container finds the parts and writes the payload; not the job's paths.
PARTS_MOUNT = "/var/run/job-scheduler/payload-parts"
ASSEMBLED_MOUNT = "/var/run/job-scheduler/payload"
TERMINATION_LOG = "/dev/termination-log"


def is_split(payload: bytes | None) -> bool:
    """Whether the payload goes in parts (more than one Secret holds)."""
    return payload is not None and len(payload) > SECRET_CAPACITY_BYTES


def part_count(size: int) -> int:
    return -(-size // PART_BYTES)


def part_secret_name(job_name: str, index: int) -> str:
    return f"{job_name}-payload-{index}"


def parts(payload: bytes) -> Iterator[memoryview]:
    """The payload's parts, split on bytes (a UTF-8 character may straddle two): views, no
    copies."""
    view = memoryview(payload)
    for start in range(0, len(payload), PART_BYTES):
        yield view[start : start + PART_BYTES]


@dataclass(frozen=True, slots=True)
class Assembly:
    """What the init container is told of the payload it puts together, to check it."""

    image: str
    size: int
    sha256: str

    @classmethod
    def of(cls, payload: bytes, image: str) -> Assembly:
        return cls(image, len(payload), hashlib.sha256(payload).hexdigest())

    @property
    def count(self) -> int:
        return part_count(self.size)

    def volumes(self, job_name: str, payload_volume: str, key: str) -> list[dict[str, Any]]:
        """The emptyDir the payload is written to (`payload_volume`, which the job's container
        mounts) and the part Secrets, their `key` as files `0` .. `n-1`."""
        sources = [
            {
                "secret": {
                    "name": part_secret_name(job_name, i),
                    "items": [{"key": key, "path": str(i)}],
                }
            }
            for i in range(self.count)
        ]
        return [
            {"name": payload_volume, "emptyDir": {}},
            {"name": PARTS_VOLUME, "projected": {"sources": sources, "defaultMode": 0o444}},
        ]

    def init_container(self, job_container: dict[str, Any], payload_volume: str) -> dict[str, Any]:
        """The init container that writes `<payload_volume>/payload`: the job container's
        resources (so the pod asks for no more than before) and security context."""
        name = ASSEMBLER_NAME if job_container.get("name") != ASSEMBLER_NAME else "payload-init"
        container: dict[str, Any] = {
            "name": name,
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": [
                "python",
                "-m",
                ASSEMBLER_MODULE,
                "--parts",
                PARTS_MOUNT,
                "--count",
                str(self.count),
                "--size",
                str(self.size),
                "--sha256",
                self.sha256,
                "--out",
                f"{ASSEMBLED_MOUNT}/payload",
                "--termination-log",
                TERMINATION_LOG,
            ],
            "volumeMounts": [
                {"name": PARTS_VOLUME, "mountPath": PARTS_MOUNT, "readOnly": True},
                {"name": payload_volume, "mountPath": ASSEMBLED_MOUNT},
            ],
            "securityContext": copy.deepcopy(job_container["securityContext"]),
        }
        if "resources" in job_container:
            container["resources"] = copy.deepcopy(job_container["resources"])
        return container


def has_parts(pod_spec: dict[str, Any]) -> bool:
    """Whether the pod gets its payload in parts."""
    return any(volume.get("name") == PARTS_VOLUME for volume in pod_spec.get("volumes") or ())
