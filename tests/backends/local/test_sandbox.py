"""The payload sandbox of the local backend: a job sees its payload read-only at the payload path,
and otherwise the host, as the user who started it; where it cannot, the fallback variable."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.backends.local import sandbox
from scheduler.backends.local.sandbox import fallback_env, probe, sandbox_argv

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

PAYLOAD_PATH = "/compute/args"
PAYLOAD = "the payload\n"
NOBODY = 65534
# Generous, for a busy machine: only a hung job should ever reach it.
RUN_TIMEOUT_SECONDS = 50.0


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Finished:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def run_sandboxed(
    payload_dir: Path, script: str, cwd: Path | None = None, payload_path: str = PAYLOAD_PATH
) -> Finished:
    return await run(sandbox_argv(payload_dir, payload_path, ["/bin/sh", "-c", script]), cwd=cwd)


@pytest.fixture
def payload_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "payload-dir"
    directory.mkdir()
    (directory / "payload").write_text(PAYLOAD)
    return directory


@pytest.fixture
def no_compute_on_host() -> Iterator[None]:
    if os.path.lexists("/compute"):
        pytest.skip("this host has a /compute, so it cannot show that the sandbox adds none")
    yield
    assert not os.path.lexists("/compute")


@pytest.mark.usefixtures("no_compute_on_host")
async def test_a_job_reads_its_payload_at_exactly_the_payload_path(payload_dir: Path) -> None:
    finished = await run_sandboxed(
        payload_dir, 'cat /compute/args/payload; echo "$RADIX_PAYLOAD_PATH"'
    )

    assert finished == Finished(0, PAYLOAD + "/compute/args\n", "")


async def test_the_payload_is_read_only_inside(payload_dir: Path) -> None:
    script = "echo changed > /compute/args/payload; touch /compute/args/new; mkdir /compute/args/dir; rm /compute/args/payload; echo done"

    finished = await run_sandboxed(payload_dir, script)

    assert finished.stdout == "done\n"
    assert finished.stderr.count("Read-only file system") == 4
    assert os.listdir(payload_dir) == ["payload"]
    assert (payload_dir / "payload").read_text() == PAYLOAD


async def test_the_rest_of_the_filesystem_is_the_hosts(payload_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "input").write_text("from the host\n")

    finished = await run_sandboxed(payload_dir, "pwd; cat input; cat input > output", cwd=tmp_path)

    assert finished == Finished(0, f"{tmp_path}\nfrom the host\n", "")
    assert (tmp_path / "output").read_text() == "from the host\n"


async def test_the_job_runs_as_the_user_who_started_it(payload_dir: Path) -> None:
    finished = await run_sandboxed(payload_dir, "id -u; id -g")

    assert finished == Finished(0, f"{os.getuid()}\n{os.getgid()}\n", "")


async def test_exit_code_stdout_and_stderr_pass_through(payload_dir: Path) -> None:
    finished = await run_sandboxed(payload_dir, "echo out; echo err >&2; exit 7")

    assert finished == Finished(7, "out\n", "err\n")


async def test_the_job_gets_default_signal_dispositions(payload_dir: Path) -> None:
    # With SIGPIPE ignored, as Python leaves it, `yes` would complain of a broken pipe.
    finished = await run_sandboxed(payload_dir, "yes | head -n 1")

    assert finished == Finished(0, "y\n", "")


async def test_sigterm_to_the_launcher_reaches_the_job(payload_dir: Path) -> None:
    script = "trap 'kill $child; exit 143' TERM; sleep 30 >/dev/null 2>&1 & child=$!; echo $$; wait"
    process = await asyncio.create_subprocess_exec(
        *sandbox_argv(payload_dir, PAYLOAD_PATH, ["/bin/sh", "-c", script]),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        job_pid = int(await asyncio.wait_for(process.stdout.readline(), RUN_TIMEOUT_SECONDS))
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), RUN_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    # The job is the first process its own PID namespace starts (PID 1 is the namespace's init).
    assert job_pid == 2
    assert returncode == 143


async def test_a_payload_path_under_a_host_directory_layers_that_directory(
    payload_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "input").write_text("beside\n")
    (tmp_path / "out").mkdir()
    payload_path = f"{tmp_path}/mounted/args"
    script = f"cat {payload_path}/payload; cat {tmp_path}/input; echo written > {tmp_path}/out/file; touch {tmp_path}/new"

    finished = await run_sandboxed(payload_dir, script, payload_path=payload_path)

    assert finished.returncode != 0
    assert finished.stdout == PAYLOAD + "beside\n"
    # New entries directly in a layered directory are refused, rather than lost with the job.
    assert "Read-only file system" in finished.stderr
    assert (tmp_path / "out" / "file").read_text() == "written\n"
    assert not (tmp_path / "mounted").exists()
    assert not (tmp_path / "new").exists()


async def test_probe_finds_the_sandbox_working_here() -> None:
    assert await probe() is None


async def test_probe_reports_at_once_that_other_platforms_have_no_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")

    reason = await probe()

    assert reason is not None
    assert "darwin" in reason


async def test_probe_reports_why_the_launcher_failed_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox, "PROBE_PAYLOAD_PATH", "/proc/args")

    assert await probe() == "sandbox: the payload path /proc/args is inside /proc"


async def test_in_the_fallback_the_job_finds_its_payload_through_the_variable(
    payload_dir: Path,
) -> None:
    assert fallback_env(payload_dir) == {"RADIX_PAYLOAD_PATH": str(payload_dir)}

    finished = await run(
        ["/bin/sh", "-c", 'cat "$RADIX_PAYLOAD_PATH/payload"'],
        env={**os.environ, **fallback_env(payload_dir)},
    )

    assert finished == Finished(0, PAYLOAD, "")


@pytest.mark.parametrize(
    ("payload_dir_name", "payload_path"),
    [
        ("payload-dir", "compute/args"),
        ("payload-dir", "/"),
        ("payload-dir", "/compute/../etc"),
        ("payload-dir", "/proc/args"),
        ("payload-dir", "{tmp_path}/link/args"),
        ("missing", "/compute/args"),
    ],
    ids=[
        "relative path",
        "root",
        "dot-dot",
        "inside /proc",
        "through a host symlink",
        "missing payload dir",
    ],
)
async def test_a_failed_set_up_exits_125_without_running_the_command(
    payload_dir: Path, tmp_path: Path, payload_dir_name: str, payload_path: str
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    marker = tmp_path / "ran"

    finished = await run(
        sandbox_argv(
            tmp_path / payload_dir_name,
            payload_path.format(tmp_path=tmp_path),
            ["touch", str(marker)],
        )
    )

    assert finished.returncode == 125
    assert finished.stderr.startswith("sandbox: ")
    assert finished.stderr.count("\n") == 1
    assert not marker.exists()
    assert not (tmp_path / "elsewhere" / "args").exists()


async def test_a_launcher_without_a_command_exits_125(payload_dir: Path) -> None:
    finished = await run(sandbox_argv(payload_dir, PAYLOAD_PATH, [])[:-1])

    assert finished.returncode == 125
    assert finished.stderr.startswith("sandbox: usage:")


@pytest.mark.parametrize(
    ("name", "returncode", "reason"),
    [("missing", 127, "No such file or directory"), ("not-a-program", 126, "Permission denied")],
)
async def test_a_command_that_cannot_run_exits_like_env_does(
    payload_dir: Path, tmp_path: Path, name: str, returncode: int, reason: str
) -> None:
    (tmp_path / "not-a-program").write_text("data\n")
    command = str(tmp_path / name)

    finished = await run(sandbox_argv(payload_dir, PAYLOAD_PATH, [command]))

    assert finished == Finished(returncode, "", f"sandbox: cannot run {command}: {reason}\n")


# As an unprivileged user: CI runs as root, where the tests above take the no-user-namespace path.


def run_as_nobody(argv: Sequence[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *argv]


@pytest.fixture
def nobody_python() -> str:
    """An interpreter that nobody may run (the test's own may live in root's home)."""
    if os.geteuid() != 0:
        pytest.skip("cannot switch users when not root; the other tests already run unprivileged")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    check = "import sys; assert sys.version_info >= (3, 10)"
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if (
            subprocess.run(
                run_as_nobody([candidate, "-I", "-S", "-c", check]),
                capture_output=True,
                timeout=RUN_TIMEOUT_SECONDS,
            ).returncode
            == 0
        ):
            return candidate
    pytest.skip("no Python 3.10+ interpreter that nobody may run")


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    # Not under tmp_path, whose parents pytest keeps private to the test's user.
    directory = Path(tempfile.mkdtemp(prefix="radix-sandbox-test-"))
    os.chown(directory, NOBODY, NOBODY)
    yield directory
    shutil.rmtree(directory)


@pytest.mark.usefixtures("no_compute_on_host")
async def test_an_unprivileged_user_gets_the_same_sandbox(
    nobody_python: str, nobody_dir: Path
) -> None:
    payload_dir = nobody_dir / "payload-dir"
    payload_dir.mkdir(mode=0o755)
    (payload_dir / "payload").write_text(PAYLOAD)
    (nobody_dir / "input").write_text("from the host\n")
    script = (
        "cat /compute/args/payload; id -u; id -g; pwd; grep CapEff /proc/self/status; cat input > output;"
        " echo changed > /compute/args/payload || echo refused; touch /compute/args/new || echo refused"
    )
    argv = [nobody_python, *sandbox_argv(payload_dir, PAYLOAD_PATH, ["/bin/sh", "-c", script])[1:]]

    finished = await run(run_as_nobody(argv), cwd=nobody_dir)

    assert finished.returncode == 0, finished.stderr
    assert (
        finished.stdout
        == f"{PAYLOAD}{NOBODY}\n{NOBODY}\n{nobody_dir}\nCapEff:\t0000000000000000\nrefused\nrefused\n"
    )
    assert finished.stderr.count("Read-only file system") == 2
    assert (nobody_dir / "output").read_text() == "from the host\n"
    assert (payload_dir / "payload").read_text() == PAYLOAD


async def test_the_launcher_runs_as_a_module_too(payload_dir: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        sandbox.__name__,
        "--payload-dir",
        str(payload_dir),
        "--payload-path",
        PAYLOAD_PATH,
        "--",
        "cat",
        "/compute/args/payload",
    ]

    finished = await run(argv, cwd=Path(__file__).parents[3])

    assert finished == Finished(0, PAYLOAD, "")
