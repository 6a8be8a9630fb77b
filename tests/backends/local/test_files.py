"""The local backend's own files, opened safely: a FIFO, a device, a directory or a symlink where a
result or a log is expected is refused at once, never waited on or followed, and what the
scheduler creates is the owner's alone whatever the umask."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scheduler.backends.local import logs
from scheduler.backends.local.files import NotAFileError, make_dir, open_regular, read_tail
from scheduler.backends.local.runner import read_result

# Only a blocked open would come near it.
PROMPT_SECONDS = 5.0


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_link(path: Path) -> Path:
    target = path.with_name("target")
    target.write_text("what the link points at")
    path.symlink_to(target)
    return path


def make_directory(path: Path) -> Path:
    path.mkdir()
    return path


NOT_FILES = {"fifo": make_fifo, "symlink": make_link, "directory": make_directory}


@contextlib.contextmanager
def released(fifo: Path) -> Iterator[None]:
    """Should a reader block on `fifo` after all, a writer that comes and goes lets it return,
    so that no thread of the test process stays stuck."""
    try:
        yield
    finally:
        if stat.S_ISFIFO(os.lstat(fifo).st_mode):
            with contextlib.suppress(OSError):  # ENXIO: no reader is waiting
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual loose umask, under which files are made readable by all unless told otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("make", NOT_FILES.values(), ids=NOT_FILES.keys())
async def test_a_result_path_that_holds_no_regular_file_is_no_result_at_once(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "0")
    with released(path):
        result = await asyncio.wait_for(asyncio.to_thread(read_result, path), PROMPT_SECONDS)
    assert result is None


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_no_result(device: str) -> None:
    assert read_result(Path(device)) is None


def test_a_huge_result_file_is_read_only_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "0"
    with path.open("wb") as file:
        file.truncate(1 << 40)  # a sparse terabyte: reading it whole would never end
        file.seek(0, os.SEEK_END)
        file.write(b"the end")
    assert read_tail(path, 7) == b"the end"


@pytest.mark.parametrize("make", NOT_FILES.values(), ids=NOT_FILES.keys())
async def test_a_log_path_that_holds_no_regular_file_is_refused_at_once(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "0.log")
    with released(path), pytest.raises(NotAFileError):
        await asyncio.wait_for(asyncio.to_thread(logs.LogFile, path), PROMPT_SECONDS)


async def test_a_followed_log_replaced_by_a_fifo_ends_with_what_was_read(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"2024-05-01T12:00:00.000001Z one\n")
    log = logs.LogFile(path)
    assert log.read() == b"2024-05-01T12:00:00.000001Z one\n"
    path.unlink()
    make_fifo(path)
    with released(path):
        replaced = await asyncio.wait_for(asyncio.to_thread(log.follow_replacement), PROMPT_SECONDS)
    log.close()
    assert not replaced


@pytest.mark.usefixtures("umask_022")
def test_a_file_made_is_0600_and_an_old_one_is_made_so_too(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    old.write_text("made by someone with a loose mode")
    old.chmod(0o644)
    for path in (new, old):
        os.close(open_regular(path, os.O_RDWR | os.O_CREAT))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert old.read_text() == "made by someone with a loose mode"


@pytest.mark.usefixtures("umask_022")
def test_a_dir_made_is_0700_even_one_there_before_with_0755(tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir(mode=0o755)
    for path in (tmp_path / "new" / "below", before):
        make_dir(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_a_symlink_where_a_dir_of_ours_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        make_dir(tmp_path / "link")
    assert stat.S_IMODE((tmp_path / "elsewhere").stat().st_mode) == 0o755
