"""Runs a job in private namespaces where its payload directory appears, read-only, at the payload
path, as in a cluster: `python -m scheduler.backends.local.sandbox --payload-dir DIR --payload-path
/compute/args -- CMD...` sets up, then execs CMD (so the job keeps the launcher's PID)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import stat
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

# Where the job finds its payload dir: the payload path when sandboxed, else the host directory.
PAYLOAD_PATH_VARIABLE = "RADIX_PAYLOAD_PATH"
# The exit codes of `chroot` and `env`: set-up failed (the command never ran); the command was
# found but could not be run; the command was not found.
SETUP_FAILED_EXIT_CODE = 125
CANNOT_RUN_EXIT_CODE = 126
NOT_FOUND_EXIT_CODE = 127
PROBE_TIMEOUT_SECONDS = 30.0
PROBE_PAYLOAD_PATH = "/.radix-sandbox-probe/args"
PROBE_TOKEN = "radix-sandbox-probe"

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
# Kernel views, not directories to layer a payload into.
SPECIAL_DIRECTORIES = frozenset({"proc", "sys", "dev"})
# Shadowed by our scratch root only inside our namespace, and only until the first pivot_root.
SCRATCH_DIRECTORY = "/tmp"


class SandboxError(Exception):
    """The sandbox could not be set up; the command did not run."""


def sandbox_argv(payload_dir: Path, payload_path: str, command: Sequence[str]) -> list[str]:
    """The argv that runs `command` with `payload_dir` mounted read-only at `payload_path`."""
    # -I: the job's environment is the launcher's, and its PYTHON* variables must not steer the
    # launcher; -S: no site-packages code runs before the job. Hence the launcher is run by path
    # (-I ignores PYTHONPATH), which works because it needs nothing but the standard library.
    return [
        *(sys.executable, "-I", "-S", str(Path(__file__).resolve())),
        *("--payload-dir", str(payload_dir.absolute()), "--payload-path", payload_path),
        "--",
        *command,
    ]


def fallback_env(payload_dir: Path) -> dict[str, str]:
    """Where the sandbox cannot work: the job runs as a plain child process and finds its payload
    directory through RADIX_PAYLOAD_PATH (a host path) instead of at the payload path."""
    return {PAYLOAD_PATH_VARIABLE: str(payload_dir)}


async def probe() -> str | None:
    """None when a sandboxed job can read its payload on this machine, else why not (one line)."""
    if sys.platform != "linux":
        return f"the payload sandbox needs Linux namespaces; this is {sys.platform}"
    # Imported here: the launcher, which starts every job, needs neither; asyncio is slow to load.
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory(prefix="radix-sandbox-probe-") as payload_dir:
        await asyncio.to_thread(Path(payload_dir, "payload").write_text, PROBE_TOKEN)
        command = ["/bin/sh", "-c", f"cat {PROBE_PAYLOAD_PATH}/payload"]
        try:
            process = await asyncio.create_subprocess_exec(
                *sandbox_argv(Path(payload_dir), PROBE_PAYLOAD_PATH, command),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return f"cannot start the sandbox probe: {exc}"
        try:
            out, err = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            return f"the sandbox probe did not finish in {PROBE_TIMEOUT_SECONDS:g} s"
    if process.returncode == 0 and out.decode(errors="replace") == PROBE_TOKEN:
        return None
    lines = err.decode(errors="replace").strip().splitlines()
    return (
        lines[-1] if lines else f"the sandbox probe did not read its payload ({process.returncode})"
    )


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        # Declared, so that flags reach the kernel as the unsigned long it reads.
        libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.unshare.argtypes = [ctypes.c_int]
        libc.pivot_root.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    except AttributeError as exc:
        raise SandboxError(f"the C library lacks a call: {exc}") from exc
    return libc


def _call(function: str, *args: object, doing: str) -> None:
    if getattr(_libc(), function)(*args) != 0:
        raise SandboxError(f"{doing}: {os.strerror(ctypes.get_errno())}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(
    source: str | None, target: str, flags: int, fstype: str | None = None, data: str = ""
) -> None:
    doing = f"mount {source or fstype} on {target}"
    _call("mount", _bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data), doing=doing)


def _write(path: str, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def _map_ids(uid: tuple[int, int], gid: tuple[int, int]) -> None:
    """Maps (inside, outside) ids in the user namespace just entered."""
    # An unprivileged process may map only itself, and only once setgroups is denied.
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid[0]} {uid[1]} 1")
    _write("/proc/self/gid_map", f"{gid[0]} {gid[1]} 1")


def _enter_namespaces(uid: int, gid: int) -> None:
    """Enters a private mount namespace, as uid 0 of a new user namespace unless already root."""
    if uid == 0:
        try:
            _call("unshare", CLONE_NEWNS, doing="unshare the mount namespace")
            return
        except SandboxError:
            pass  # root without CAP_SYS_ADMIN, as in a container: a user namespace may still work
    _call("unshare", CLONE_NEWUSER | CLONE_NEWNS, doing="unshare user and mount namespaces")
    _map_ids((0, uid), (0, gid))


def _remount_read_only(target: str) -> None:
    # In a user namespace the flags a mount inherited are locked, so the remount repeats them
    # (statvfs reports them at the bits mount(2) takes).
    kept = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _replicate(source: os.DirEntry[str], target: str) -> None:
    """Makes `target`, in one of our tmpfs layers, show the host's `source`."""
    try:
        if source.is_symlink():
            os.symlink(os.readlink(source.path), target)
            return
        if source.is_dir(follow_symlinks=False):
            os.mkdir(target)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
        _mount(source.path, target, MS_BIND | MS_REC)
    except (OSError, SandboxError):
        if os.path.lexists(source.path):
            raise
        # It vanished between listing and binding (a busy /tmp): the job would not see it either.
        with contextlib.suppress(FileNotFoundError):
            (os.rmdir if source.is_dir(follow_symlinks=False) else os.unlink)(target)


def _layer(host: str, layer: str, route: Sequence[str], payload: str) -> None:
    """Mounts a tmpfs at `layer` showing the directory `host`, and the payload at the end of
    `route` (names below `host`), read-only."""
    mode = stat.S_IMODE(os.stat(host).st_mode)
    _mount("tmpfs", layer, MS_NOSUID | MS_NODEV, "tmpfs", f"mode={mode:o}")
    name, rest = route[0], route[1:]
    with os.scandir(host) as entries:
        for entry in entries:
            if entry.name != name:
                _replicate(entry, f"{layer}/{entry.name}")
    host_path, layer_path = f"{host}/{name}", f"{layer}/{name}"
    if not rest or not os.path.lexists(host_path):
        # The payload shadows whatever the host has at the payload path, as a volume mount does.
        target = "/".join((layer_path, *rest))
        os.makedirs(target)
        _mount(payload, target, MS_BIND)
        _remount_read_only(target)
    elif os.path.isdir(host_path) and not os.path.islink(host_path):
        os.mkdir(layer_path)
        _layer(host_path, layer_path, rest, payload)
    else:
        raise SandboxError(f"{host_path.removeprefix('/oldroot')} is not a directory on the host")
    # New entries here would vanish with the job; refusing them beats losing them silently.
    _remount_read_only(layer)


def _pivot_root(new_root: str, put_old: str) -> None:
    _call("pivot_root", _bytes(new_root), _bytes(put_old), doing=f"pivot_root to {new_root}")


def _build_root(payload_dir: str, route: Sequence[str]) -> None:
    """Makes the root a copy of the host's, but with the payload dir at `route`."""
    # Nothing we mount may propagate back to the host (no /compute may appear there).
    _mount(None, "/", MS_REC | MS_PRIVATE)
    # A scratch tmpfs becomes the root and the host's tree moves to /oldroot, where every host
    # path, even the scratch directory's own, stays reachable while /newroot is built.
    _mount("tmpfs", SCRATCH_DIRECTORY, MS_NOSUID | MS_NODEV, "tmpfs", "mode=0700")
    os.chdir(SCRATCH_DIRECTORY)
    os.mkdir("oldroot")
    os.mkdir("newroot")
    _pivot_root(".", "oldroot")
    _layer("/oldroot", "/newroot", route, f"/oldroot{payload_dir}")
    _call("umount2", b"/oldroot", MNT_DETACH, doing="detach the old root")
    # Pivoting again, rather than chroot, because the kernel refuses a user namespace to a
    # chrooted process, and the job needs one more. The scratch root ends up stacked on top.
    os.chdir("/newroot")
    _pivot_root(".", ".")
    _call("umount2", b".", MNT_DETACH, doing="detach the scratch root")
    os.chdir("/")


def _enter_sandbox(payload_dir: str, payload_path: str) -> None:
    if sys.platform != "linux":
        raise SandboxError(f"the payload sandbox needs Linux namespaces; this is {sys.platform}")
    parts = PurePosixPath(payload_path).parts
    if not payload_path.startswith("/") or len(parts) < 2 or ".." in parts:
        raise SandboxError(f"the payload path {payload_path!r} is not an absolute path below /")
    if parts[1] in SPECIAL_DIRECTORIES:
        raise SandboxError(f"the payload path {payload_path} is inside /{parts[1]}")
    if not os.path.isdir(payload_dir):
        raise SandboxError(f"the payload directory {payload_dir} is not a directory")
    # Host paths, resolved before the host's tree moves (to /oldroot, then away).
    source, cwd = os.path.realpath(payload_dir), os.getcwd()
    uid, gid = os.geteuid(), os.getegid()
    _enter_namespaces(uid, gid)
    _build_root(source, parts[1:])
    os.chdir(cwd)
    if uid != 0:
        # Uid 0 of our user namespace was only for mounting: the job runs as the user who
        # started the scheduler, and so holds no capabilities once it execs.
        _call("unshare", CLONE_NEWUSER, doing="unshare the job's user namespace")
        _map_ids((uid, 0), (gid, 0))


def _parse(argv: Sequence[str]) -> tuple[str, str, list[str]]:
    usage = "usage: sandbox --payload-dir DIR --payload-path PATH -- COMMAND [ARG...]"
    if "--" not in argv:
        raise SandboxError(usage)
    split = list(argv).index("--")
    options, command = argv[:split], list(argv[split + 1 :])
    values = dict(zip(options[::2], options[1::2], strict=False))
    if len(options) != 4 or set(values) != {"--payload-dir", "--payload-path"} or not command:
        raise SandboxError(usage)
    return values["--payload-dir"], values["--payload-path"], command


def main(argv: Sequence[str]) -> int:
    """Sets up the sandbox and execs the command; returns only on failure, with its exit code."""
    try:
        payload_dir, payload_path, command = _parse(argv)
        _enter_sandbox(payload_dir, payload_path)
    except Exception as exc:
        # Whatever went wrong, the command has not run: say so in one line, with our exit code.
        print(f"sandbox: {exc}", file=sys.stderr)
        return SETUP_FAILED_EXIT_CODE
    # Python ignores these; ignored signals stay ignored across exec, and jobs expect defaults.
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(number, signal.SIG_DFL)
    try:
        os.execvpe(command[0], command, {**os.environ, PAYLOAD_PATH_VARIABLE: payload_path})
    except OSError as exc:
        print(f"sandbox: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return NOT_FOUND_EXIT_CODE if isinstance(exc, FileNotFoundError) else CANNOT_RUN_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
