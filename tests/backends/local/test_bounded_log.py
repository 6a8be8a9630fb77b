"""An attempt's log file on the local backend, without a scheduler: whatever a job prints, long
lines without a newline included, the file keeps its newest text within the limit, in bounded
memory and in time linear in the output."""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.backends.local.runner import LINE_LIMIT_BYTES, READ_CHUNK_BYTES, BoundedLog

CHUNK = b"a" * READ_CHUNK_BYTES


def stored_lines(path: Path) -> list[bytes]:
    """The log's lines without their times."""
    lines = path.read_bytes().splitlines()
    assert all(
        line[:4].isdigit() and line[-1:] == b"Z" for line in (s.split(b" ")[0] for s in lines)
    )
    return [line.split(b" ", 1)[1] for line in lines]


def write_all(log: BoundedLog, output: bytes, chunk_size: int = READ_CHUNK_BYTES) -> None:
    for start in range(0, len(output), chunk_size):
        log.write(output[start : start + chunk_size])
    log.close()


def test_a_line_without_a_newline_is_stored_in_pieces_of_the_line_limit(tmp_path: Path) -> None:
    output = b"x" * (3 * LINE_LIMIT_BYTES + 1000)
    write_all(BoundedLog(tmp_path / "0.log", 1024 * 1024), output)
    pieces = stored_lines(tmp_path / "0.log")
    assert [len(piece) for piece in pieces] == [LINE_LIMIT_BYTES] * 3 + [1000]
    assert b"".join(pieces) == output


def test_lines_and_their_ends_are_kept_across_chunks(tmp_path: Path) -> None:
    output = b"one\n\ntwo words\nand a last one without its newline"
    write_all(BoundedLog(tmp_path / "0.log", 4096), output, chunk_size=3)
    assert stored_lines(tmp_path / "0.log") == output.split(b"\n")


@pytest.mark.parametrize(
    "output",
    [
        pytest.param(b"a" * 5_000_000, id="no-newline"),
        pytest.param(b"a" * 5_000_000 + b"\nthe end", id="newline-near-the-end"),
        pytest.param(b"".join(b"%d\n" % i for i in range(500_000)), id="short-lines"),
        pytest.param(b"b" * 70_000 + b"\n" + b"c" * 9_000_000, id="long-then-longer"),
    ],
)
def test_the_log_keeps_its_newest_text_within_the_limit_whatever_the_output(
    tmp_path: Path, output: bytes
) -> None:
    limit = 256 * 1024
    path = tmp_path / "0.log"
    write_all(BoundedLog(path, limit), output)
    assert limit // 3 < path.stat().st_size <= limit, "much of the limit is used, never more"
    kept = stored_lines(path)
    text = b"".join(kept)
    # The newest of the output, in order, nothing left out.
    assert output.replace(b"\n", b"").endswith(text)
    assert output.rstrip(b"\n").endswith(kept[-1])


def test_a_compaction_never_empties_the_log_even_when_no_line_starts_in_what_it_keeps(
    tmp_path: Path,
) -> None:
    # So small that one stored line (its time, half the limit of text) is more than the three
    # quarters a compaction keeps: the last line is kept whole instead.
    path = tmp_path / "0.log"
    write_all(BoundedLog(path, 100), b"z" * 1000)
    assert stored_lines(path) == [b"z" * 50]
    assert path.stat().st_size <= 100


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.usefixtures("traced")
def test_memory_stays_bounded_for_a_line_without_end(tmp_path: Path) -> None:
    log = BoundedLog(tmp_path / "0.log", 256 * 1024)
    tracemalloc.reset_peak()
    for _ in range(20 * 1024 * 1024 // len(CHUNK)):  # 20 MiB
        log.write(CHUNK)
    log.close()
    _, peak = tracemalloc.get_traced_memory()
    # What a compaction reads and a few chunks, not the 20 MiB line.
    assert peak < 2 * 1024 * 1024, f"{peak} bytes at the peak"


def cpu_seconds_to_write(path: Path, chunks: int) -> float:
    log = BoundedLog(path, 1024 * 1024)
    start = time.thread_time()
    for _ in range(chunks):
        log.write(CHUNK)
    log.close()
    spent = time.thread_time() - start
    path.unlink()
    return spent


def test_ten_times_the_output_costs_about_ten_times_the_work(tmp_path: Path) -> None:
    small = min(cpu_seconds_to_write(tmp_path / "0.log", 64) for _ in range(3))  # 4 MiB
    large = cpu_seconds_to_write(tmp_path / "0.log", 640)  # 40 MiB
    # Linear is 10 times; re-joining the unfinished line for every chunk made it 100 times.
    assert large < 30 * max(small, 0.001), (small, large)


def test_the_log_and_its_compacted_copies_are_the_owners_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "0.log"
        log = BoundedLog(path, 4096)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        log.write(b"x\n" * 10_000)  # compacted: a new file at the path
        log.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["0.log"], "no copy left behind"
