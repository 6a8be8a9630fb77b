"""`python -m scheduler.assemble_payload`, the init container that puts a large payload together
in a job's pod, run as the real process it is there: the payload byte for byte, read-only, and
for parts that are not the payload, exit 1, one line saying why, and no payload file."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PART_BYTES = 512 * 1024
# A payload of three parts, the last one short, cut through a four-byte character.
PAYLOAD = ("x" * (PART_BYTES - 2) + "\U0001f680" + "y" * (PART_BYTES + 7)).encode()


def write_parts(directory: Path, payload: bytes = PAYLOAD) -> int:
    directory.mkdir()
    count = 0
    for count, start in enumerate(range(0, len(payload), PART_BYTES), start=1):
        (directory / str(count - 1)).write_bytes(payload[start : start + PART_BYTES])
    return count


def assemble(
    tmp_path: Path,
    *,
    count: int = 3,
    size: int = len(PAYLOAD),
    sha256: str = hashlib.sha256(PAYLOAD).hexdigest(),
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler.assemble_payload",
            "--parts",
            str(tmp_path / "parts"),
            "--count",
            str(count),
            "--size",
            str(size),
            "--sha256",
            sha256,
            "--out",
            str(tmp_path / "out" / "payload"),
            "--termination-log",
            str(tmp_path / "termination-log"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    write_parts(tmp_path / "parts")
    (tmp_path / "out").mkdir()
    return tmp_path / "parts"


def test_the_parts_become_the_payload_byte_for_byte_and_read_only(
    tmp_path: Path, parts: Path
) -> None:
    done = assemble(tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    written = tmp_path / "out" / "payload"
    assert written.read_bytes() == PAYLOAD
    assert stat.S_IMODE(written.stat().st_mode) == 0o444
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["payload"]


def test_an_empty_payload_of_one_empty_part_is_an_empty_file(tmp_path: Path) -> None:
    write_parts(tmp_path / "parts", b"")
    (tmp_path / "parts" / "0").write_bytes(b"")
    (tmp_path / "out").mkdir()
    done = assemble(tmp_path, count=1, size=0, sha256=hashlib.sha256(b"").hexdigest())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "payload").read_bytes() == b""


MISMATCHES = {
    "a missing part": (
        {"count": 4},
        "the payload cannot be put together: part 3 of 4 is missing",
    ),
    "a part too many": (
        {"count": 2, "size": 2 * PART_BYTES},
        "the payload cannot be put together: there are more than 2 parts",
    ),
    "another size": (
        {"size": len(PAYLOAD) + 1},
        f"the payload cannot be put together: the 3 parts hold {len(PAYLOAD)} bytes, "
        f"not {len(PAYLOAD) + 1}",
    ),
    "another checksum": (
        {"sha256": "0" * 64},
        f"the payload cannot be put together: the parts' SHA-256 is "
        f"{hashlib.sha256(PAYLOAD).hexdigest()}, not {'0' * 64}",
    ),
}


@pytest.mark.parametrize(("arguments", "line"), MISMATCHES.values(), ids=MISMATCHES.keys())
def test_parts_that_are_not_the_payload_fail_with_one_line_and_leave_no_file(
    tmp_path: Path, parts: Path, arguments: dict[str, int | str], line: str
) -> None:
    done = assemble(tmp_path, **arguments)  # type: ignore[arg-type]
    assert (done.returncode, done.stderr) == (1, line + "\n")
    assert (tmp_path / "termination-log").read_text() == line + "\n"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_payload_dir_it_cannot_write_fails_with_one_line(tmp_path: Path, parts: Path) -> None:
    (tmp_path / "out").rmdir()
    done = assemble(tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("the payload cannot be put together: No such file or directory")


def test_it_imports_nothing_but_the_standard_library() -> None:
    # The scheduler's image runs it as the init container; none of the scheduler's dependencies
    # may be needed, nor loaded.
    probe = (
        "import json, sys; before = set(sys.modules); import scheduler.assemble_payload; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "scheduler"
    ]
    assert foreign == []
    assert [n for n in loaded if n.startswith("scheduler")] == [
        "scheduler",
        "scheduler.assemble_payload",
    ]
