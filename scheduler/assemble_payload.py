"""Puts a job's payload together from its parts, in the job's pod before the job's container
starts: the init container of a pod whose payload is larger than one Secret holds
(`scheduler/backends/kubernetes/payloads.py`). Standard library only: it runs in the scheduler's
image but needs nothing of the scheduler.

    python -m scheduler.assemble_payload --parts DIR --count N --size BYTES --sha256 HEX \\
        --out FILE [--termination-log FILE]

DIR holds the parts as files `0` .. `N-1`. FILE appears whole and read-only, or not at all; when
the parts are not what the scheduler made (missing, another size or checksum) it exits 1 and says
why in one line, on stderr and in the termination log, which Kubernetes shows as the job's reason.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
from pathlib import Path

CHUNK_BYTES = 1024 * 1024
FAILED = 1
PREFIX = "the payload cannot be put together"


class Mismatch(Exception):
    """The parts are not the payload the scheduler split."""


def assemble(parts: Path, count: int, size: int, sha256: str, out: Path) -> None:
    """Write `out` from the parts, checked; Mismatch (or OSError) leaves no `out`."""
    temp = out.with_name(f".{out.name}.tmp")
    digest = hashlib.sha256()
    written = 0
    try:
        with temp.open("wb") as target:
            for index in range(count):
                try:
                    source = (parts / str(index)).open("rb")
                except FileNotFoundError:
                    raise Mismatch(f"part {index} of {count} is missing") from None
                with source:
                    while chunk := source.read(CHUNK_BYTES):
                        digest.update(chunk)
                        target.write(chunk)
                        written += len(chunk)
            if (parts / str(count)).exists():
                raise Mismatch(f"there are more than {count} parts")
            if written != size:
                raise Mismatch(f"the {count} parts hold {written} bytes, not {size}")
            if digest.hexdigest() != sha256.lower():
                raise Mismatch(f"the parts' SHA-256 is {digest.hexdigest()}, not {sha256}")
            target.flush()
            os.fsync(target.fileno())
        temp.chmod(0o444)
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler.assemble_payload",
        description="Put a job's payload together from its parts.",
    )
    parser.add_argument("--parts", type=Path, required=True, help="the dir of the parts 0..N-1")
    parser.add_argument("--count", type=int, required=True, help="how many parts there are")
    parser.add_argument("--size", type=int, required=True, help="the payload's size in bytes")
    parser.add_argument("--sha256", required=True, help="the payload's SHA-256, in hex")
    parser.add_argument("--out", type=Path, required=True, help="the payload file to write")
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=None,
        help="where to say why it failed, besides stderr (Kubernetes: /dev/termination-log)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    try:
        assemble(arguments.parts, arguments.count, arguments.size, arguments.sha256, arguments.out)
    except (Mismatch, OSError) as exc:
        why = str(exc) if isinstance(exc, Mismatch) else f"{exc.strerror}: {exc.filename}"
        line = f"{PREFIX}: {why}"
        print(line, file=sys.stderr)
        if arguments.termination_log is not None:
            with contextlib.suppress(OSError):  # stderr has it
                arguments.termination_log.write_text(line + "\n", encoding="utf-8")
        return FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
