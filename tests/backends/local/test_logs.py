"""The local backend's log reading without a scheduler: times stripped across block bounds, the
last lines found backwards, and a compacted file taken up after the last line read."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from scheduler.backends.local import logs
from scheduler.backends.local.logs import Unstamper, first_line_after, tail_start

STORED = (
    b"2024-05-01T12:00:00.000001Z one\n"
    b"2024-05-01T12:00:00.000002Z \n"
    b"2024-05-01T12:00:00.000003Z three words here\n"
)


@pytest.mark.parametrize("split", range(len(STORED) + 1))
def test_times_are_stripped_wherever_the_blocks_split(split: int) -> None:
    unstamper = Unstamper()
    text = unstamper.feed(STORED[:split]) + unstamper.feed(STORED[split:])
    assert text == b"one\n\nthree words here\n"


def test_times_are_stripped_from_a_stream_of_one_byte_blocks() -> None:
    unstamper = Unstamper()
    assert b"".join(unstamper.feed(STORED[i : i + 1]) for i in range(len(STORED))) == (
        b"one\n\nthree words here\n"
    )


@pytest.mark.parametrize(
    ("content", "lines", "tail"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 9, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 0, b""),
        (b"a\nb\nc", 1, b"c"),  # a last line not ended yet is a line
        (b"a\nb\nc", 2, b"b\nc"),
        (b"\n\n", 1, b"\n"),
        (b"", 3, b""),
    ],
)
def test_tail_start_is_where_the_last_lines_begin(content: bytes, lines: int, tail: bytes) -> None:
    file = io.BytesIO(content)
    assert content[tail_start(file, lines) :] == tail


def test_tail_start_reads_backwards_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "BLOCK_BYTES", 4)
    content = b"".join(f"line {i}\n".encode() for i in range(100))
    file = io.BytesIO(content)
    assert content[tail_start(file, 3) :] == b"line 97\nline 98\nline 99\n"


def test_first_line_after_skips_lines_read_before_the_compaction() -> None:
    file = io.BytesIO(STORED)
    assert (
        STORED[first_line_after(file, b"2024-05-01T12:00:00.000002Z") :]
        == STORED.splitlines(keepends=True)[2]
    )
    assert first_line_after(io.BytesIO(STORED), None) == 0
    assert first_line_after(io.BytesIO(STORED), b"2024-05-01T12:00:00.000003Z") == len(STORED)


def test_first_line_after_skips_a_line_longer_than_a_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "BLOCK_BYTES", 8)
    content = b"2024-05-01T12:00:00.000001Z " + b"x" * 100 + b"\n2024-05-01T12:00:00.000002Z y\n"
    start = first_line_after(io.BytesIO(content), b"2024-05-01T12:00:00.000001Z")
    assert content[start:] == b"2024-05-01T12:00:00.000002Z y\n"


def test_a_followed_file_replaced_by_a_compacted_copy_goes_on_after_the_last_line_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(STORED[:-16])  # the third line half written
    log = logs.LogFile(path)
    read = log.read()
    assert not log.follow_replacement()
    # The rest of the line, then a compaction: the newest lines in a new file, and one more.
    with path.open("ab") as file:
        file.write(STORED[-16:])
    compacted = tmp_path / "0.tmp"
    compacted.write_bytes(STORED.splitlines(keepends=True)[2] + b"2024-05-01T12:00:01Z four\n")
    os.replace(compacted, path)
    assert log.follow_replacement()  # the old file has more: read it first
    read += log.read()
    assert log.read() == b""
    assert log.follow_replacement()  # now on the new file
    read += log.read()
    assert not log.follow_replacement()
    log.close()
    assert read == STORED + b"2024-05-01T12:00:01Z four\n"
