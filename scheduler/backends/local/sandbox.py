"""Runs a job confined, as in a pod. `python -m scheduler.backends.local.sandbox [OPTIONS] --
CMD...` is the job's process as the scheduler sees it: the parent of an init in a new PID
namespace that runs CMD there with a fresh /proc, the state dir hidden and the payload directory
read-only at the payload path. However the job ends, all it started ends with it, and all of it
ends with the scheduler. With `--isolate no` (no namespaces here) it only execs CMD."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import select
import signal
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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
CLONE_NEWPID = 0x20000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
# Kernel views, not directories to layer a payload into.
SPECIAL_DIRECTORIES = frozenset({"proc", "sys", "dev"})
# Shadowed by our scratch root only inside our namespace, and only until the first pivot_root.
SCRATCH_DIRECTORY = "/tmp"
# What the launcher and the init pass on to the job, as a kubelet's TERM reaches the container.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class SandboxError(Exception):
    """The sandbox could not be set up; the command did not run."""


@dataclass(frozen=True, slots=True)
class Options:
    command: list[str]
    payload_dir: str | None = None
    payload_path: str | None = None
    hide: str | None = None  # a host directory the job sees empty (the state dir)
    expose: str | None = None  # ... but for this directory inside it (the job's result dir)
    # Where the job finds `expose` instead, in a /tmp of its own: a job of another user cannot
    # pass through the directories above the state dir (a root's home is 0700).
    expose_at: str | None = None
    user: tuple[int, int] | None = None  # uid and gid to run as (only a root launcher can)
    parent: int | None = None  # the scheduler: when it dies, the job dies
    isolate: bool = True


def sandbox_argv(
    payload_dir: Path | None,
    payload_path: str | None,
    command: Sequence[str],
    *,
    hide: Path | None = None,
    expose: Path | None = None,
    expose_at: str | None = None,
    user: tuple[int, int] | None = None,
    isolate: bool = True,
) -> list[str]:
    """The argv that runs `command` confined, with `payload_dir` (if any) mounted read-only at
    `payload_path`. Started from the scheduler's main thread, as the kernel ties the job's end to
    the thread that started it (PR_SET_PDEATHSIG)."""
    options = ["--parent", str(os.getpid())]
    if payload_dir is not None and payload_path is not None:
        options += ["--payload-dir", str(payload_dir.absolute()), "--payload-path", payload_path]
    if hide is not None:
        options += ["--hide", str(hide.absolute())]
    if expose is not None:
        options += ["--expose", str(expose.absolute())]
    if expose_at is not None:
        options += ["--expose-at", expose_at]
    if user is not None:
        options += ["--user", f"{user[0]}:{user[1]}"]
    if not isolate:
        options += ["--isolate", "no"]
    # -I: the job's environment must not steer the launcher (its PYTHON* variables); -S: no
    # site-packages code runs before the job. Hence the launcher is run by path (-I ignores
    # PYTHONPATH), which works because it needs nothing but the standard library.
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), *options, "--", *command]


def fallback_env(payload_dir: Path) -> dict[str, str]:
    """Where the sandbox cannot work: the job runs as a plain child process and finds its payload
    directory through RADIX_PAYLOAD_PATH (a host path) instead of at the payload path."""
    return {PAYLOAD_PATH_VARIABLE: str(payload_dir)}


async def probe(user: tuple[int, int] | None = None) -> str | None:
    """None when a sandboxed job (as `user`) can read its payload on this machine, else why not
    (one line)."""
    if sys.platform != "linux":
        return f"the payload sandbox needs Linux namespaces; this is {sys.platform}"
    # Imported here: the launcher, which starts every job, needs neither; asyncio is slow to load.
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory(prefix="radix-sandbox-probe-") as payload_dir:
        await asyncio.to_thread(Path(payload_dir, "payload").write_text, PROBE_TOKEN)
        if user is not None:
            for path in (payload_dir, f"{payload_dir}/payload"):
                os.chown(path, *user)
        command = ["/bin/sh", "-c", f"cat {PROBE_PAYLOAD_PATH}/payload"]
        argv = sandbox_argv(Path(payload_dir), PROBE_PAYLOAD_PATH, command, user=user)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
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
        libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    except AttributeError as exc:
        raise SandboxError(f"the C library lacks a call: {exc}") from exc
    return libc


def _call(function: str, *args: object, doing: str) -> None:
    if getattr(_libc(), function)(*args) != 0:
        raise SandboxError(f"{doing}: {os.strerror(ctypes.get_errno())}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(
    source: str | None, target: str, flags: int, *, fstype: str | None = None, data: str = ""
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


def _layer(host: str, layer: str, *, route: Sequence[str], payload: str) -> None:
    """Mounts a tmpfs at `layer` showing the directory `host`, and the payload at the end of
    `route` (names below `host`), read-only."""
    mode = stat.S_IMODE(os.stat(host).st_mode)
    _mount("tmpfs", layer, MS_NOSUID | MS_NODEV, fstype="tmpfs", data=f"mode={mode:o}")
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
        _layer(host_path, layer_path, route=rest, payload=payload)
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
    _mount("tmpfs", SCRATCH_DIRECTORY, MS_NOSUID | MS_NODEV, fstype="tmpfs", data="mode=0700")
    os.chdir(SCRATCH_DIRECTORY)
    os.mkdir("oldroot")
    os.mkdir("newroot")
    _pivot_root(".", "oldroot")
    _layer("/oldroot", "/newroot", route=route, payload=f"/oldroot{payload_dir}")
    _call("umount2", b"/oldroot", MNT_DETACH, doing="detach the old root")
    # Pivoting again, rather than chroot, because the kernel refuses a user namespace to a
    # chrooted process, and the job needs one more. The scratch root ends up stacked on top.
    os.chdir("/newroot")
    _pivot_root(".", ".")
    _call("umount2", b".", MNT_DETACH, doing="detach the scratch root")
    os.chdir("/")


def _enter_namespaces(uid: int, gid: int) -> bool:
    """Enters private mount and PID namespaces (the latter for our children), as uid 0 of a new
    user namespace unless already root; True when that user namespace was needed."""
    if uid == 0:
        try:
            _call("unshare", CLONE_NEWNS | CLONE_NEWPID, doing="unshare mount and PID namespaces")
            return False
        except SandboxError:
            pass  # root without CAP_SYS_ADMIN, as in a container: a user namespace may still work
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID
    _call("unshare", flags, doing="unshare user, mount and PID namespaces")
    _map_ids((0, uid), (0, gid))
    return True


def _hide(directory: str, expose: int | None, exposed: str | None) -> None:
    """Covers `directory` with an empty read-only tmpfs, showing only the directory open as
    `expose` at its host path `exposed` (below `directory`), writable."""
    _mount("tmpfs", directory, MS_NOSUID | MS_NODEV | MS_NOEXEC, fstype="tmpfs", data="mode=0755")
    if expose is not None and exposed is not None:
        relative = os.path.relpath(exposed, directory)
        if relative != ".." and not relative.startswith("../"):
            target = os.path.join(directory, relative)
            os.makedirs(target, exist_ok=True)
            _mount(f"/proc/self/fd/{expose}", target, MS_BIND)
    _remount_read_only(directory)


def _private_tmp_with(expose: int, target: str) -> None:
    """Gives the job a /tmp of its own (as a container has), with the directory open as
    `expose` at `target` in it."""
    _mount("tmpfs", "/tmp", MS_NOSUID | MS_NODEV, fstype="tmpfs", data="mode=1777")
    os.makedirs(target, mode=0o755)
    _mount(f"/proc/self/fd/{expose}", target, MS_BIND)


def _close_inherited_fds(keep: Sequence[int] = ()) -> None:
    """Closes every descriptor but 0-2 and `keep`: under uvloop the scheduler's leak into us."""
    lowest = 3
    for descriptor in sorted(keep):
        os.closerange(lowest, descriptor)
        lowest = descriptor + 1
    os.closerange(lowest, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _die_with_parent(parent: int | None) -> None:
    """SIGKILL us when our parent ends; if it has ended already, end now."""
    if sys.platform == "linux":
        _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0, doing="prctl PR_SET_PDEATHSIG")
    if parent is not None and os.getppid() != parent:
        os._exit(SETUP_FAILED_EXIT_CODE)  # too late to tie our end to our parent's


def _become(user: tuple[int, int]) -> None:
    uid, gid = user
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def _run_command(options: Options, *, in_user_namespace: bool, uid: int, gid: int) -> int:
    """In the job's process: drops what the job may not have, then execs its command."""
    if options.user is not None and not in_user_namespace:
        _become(options.user)  # a root launcher: setuid to anyone, and no capabilities after
    elif in_user_namespace and uid != 0:
        # Uid 0 of our user namespace was only for mounting: the job runs as the user who
        # started the scheduler, and so holds no capabilities once it execs.
        _call("unshare", CLONE_NEWUSER, doing="unshare the job's user namespace")
        _map_ids((uid, 0), (gid, 0))
    if not os.access(".", os.X_OK):
        os.chdir("/")  # the scheduler's working directory is not the job user's to enter
    env = dict(os.environ)
    if options.payload_path is not None and options.isolate:
        env[PAYLOAD_PATH_VARIABLE] = options.payload_path
    return _exec(options.command, env)


def _exec(command: list[str], env: dict[str, str]) -> int:
    # Python ignores these; ignored signals stay ignored across exec, and jobs expect defaults.
    for number in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS):
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"sandbox: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return NOT_FOUND_EXIT_CODE if isinstance(exc, FileNotFoundError) else CANNOT_RUN_EXIT_CODE


def _forward_signals_to(pid: int) -> None:
    """Passes the forwarded signals on to `pid`, those that came while it was made included."""

    def forward(number: int, _: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

    for number in FORWARDED_SIGNALS:
        signal.signal(number, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)


def _fork_forwarding() -> int:
    """Forks; in the parent, forwarded signals go to the child from now on."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    child = os.fork()
    if child != 0:
        _forward_signals_to(child)
    return child


def _init(options: Options, *, in_user_namespace: bool, uid: int, gid: int, launcher: int) -> None:
    """PID 1 of the job's namespace: sets up its view, runs the job as PID 2, reaps what else
    ends there, and when the job ends, ends too, and so (the kernel sees to it) does everything
    left in the namespace. Writes the job's wait status to `launcher` (a pipe)."""
    _die_with_parent(None)
    # Too late if the launcher has gone already: the write end of its pipe has no reader then.
    gone = select.poll()
    gone.register(launcher, 0)  # an error is reported whatever the events asked for
    if gone.poll(0):
        os._exit(SETUP_FAILED_EXIT_CODE)
    # Host paths, resolved before the host's tree moves (to /oldroot, then away).
    cwd = os.getcwd()
    hide = os.path.realpath(options.hide) if options.hide is not None else None
    exposed = os.path.realpath(options.expose) if options.expose is not None else None
    # Nothing we mount may propagate back to the host (no /compute may appear there).
    _mount(None, "/", MS_REC | MS_PRIVATE)
    if options.payload_dir is not None and options.payload_path is not None:
        parts = PurePosixPath(options.payload_path).parts
        _build_root(os.path.realpath(options.payload_dir), parts[1:])
    # Our own /proc shows the namespace's processes only: none of the scheduler's.
    _mount("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, fstype="proc")
    if hide is not None:
        # Opened in the new root (the same path as on the host): a bind's source must be there.
        expose = None if exposed is None else os.open(exposed, os.O_PATH | os.O_DIRECTORY)
        _hide(hide, expose, exposed)
        if expose is not None and options.expose_at is not None:
            _private_tmp_with(expose, options.expose_at)
        if expose is not None:
            os.close(expose)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    job = _fork_forwarding()
    if job == 0:
        os.close(launcher)
        os._exit(_run_command(options, in_user_namespace=in_user_namespace, uid=uid, gid=gid))
    while True:
        pid, status = os.wait()
        if pid == job:
            os.write(launcher, str(status).encode())
            os._exit(0)


def _end_as(status: int) -> int:
    """Ends the launcher the way the job ended, by the same signal when it was killed."""
    if not os.WIFSIGNALED(status):
        return os.waitstatus_to_exitcode(status)
    number = os.WTERMSIG(status)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    return 128 + number  # a signal we cannot die of


def _launch(options: Options) -> int:
    """The launcher: the job's process as the scheduler sees it, parent of the namespace's init."""
    uid, gid = os.geteuid(), os.getegid()
    in_user_namespace = _enter_namespaces(uid, gid)
    if in_user_namespace and options.user is not None and options.user != (uid, gid):
        raise SandboxError(f"cannot run as uid {options.user[0]} in a user namespace")
    status_read, status_write = os.pipe()
    init = _fork_forwarding()
    if init == 0:
        os.close(status_read)
        try:
            _init(
                options,
                in_user_namespace=in_user_namespace,
                uid=uid,
                gid=gid,
                launcher=status_write,
            )
        except Exception as exc:
            print(f"sandbox: {exc}", file=sys.stderr)
        os._exit(SETUP_FAILED_EXIT_CODE)
    os.close(status_write)
    reported = b""
    while chunk := os.read(status_read, 64):
        reported += chunk
    _, init_status = os.waitpid(init, 0)
    return _end_as(int(reported) if reported else init_status)


def _parse(argv: Sequence[str]) -> Options:
    usage = "usage: sandbox [--payload-dir DIR --payload-path PATH]"
    usage += " [--hide DIR [--expose DIR [--expose-at /tmp/PATH]]]"
    usage += " [--user UID:GID] [--parent PID] [--isolate yes|no] -- COMMAND [ARG...]"
    if "--" not in argv:
        raise SandboxError(usage)
    split = list(argv).index("--")
    pairs, command = argv[:split], list(argv[split + 1 :])
    values = dict(zip(pairs[::2], pairs[1::2], strict=False))
    known = {"--payload-dir", "--payload-path", "--hide", "--expose", "--expose-at", "--user"}
    known |= {"--parent"}
    if (
        not command
        or len(pairs) % 2
        or len(values) * 2 != len(pairs)
        or not set(values) <= known | {"--isolate"}
        or ("--payload-dir" in values) != ("--payload-path" in values)
        or values.get("--isolate", "yes") not in ("yes", "no")
    ):
        raise SandboxError(usage)
    try:
        user = None
        if "--user" in values:
            uid, gid = values["--user"].split(":")
            user = int(uid), int(gid)
        parent = int(values["--parent"]) if "--parent" in values else None
    except ValueError:
        raise SandboxError(usage) from None
    options = Options(
        command,
        values.get("--payload-dir"),
        values.get("--payload-path"),
        values.get("--hide"),
        values.get("--expose"),
        values.get("--expose-at"),
        user,
        parent,
        values.get("--isolate", "yes") == "yes",
    )
    if options.isolate:
        _check(options)
    return options


def _check(options: Options) -> None:
    if sys.platform != "linux":
        raise SandboxError(f"the payload sandbox needs Linux namespaces; this is {sys.platform}")
    if options.expose_at is not None and (
        not options.expose_at.startswith("/tmp/") or ".." in PurePosixPath(options.expose_at).parts
    ):
        raise SandboxError(f"--expose-at {options.expose_at!r} is not a path below /tmp")
    if options.payload_dir is None or options.payload_path is None:
        return
    parts = PurePosixPath(options.payload_path).parts
    if not options.payload_path.startswith("/") or len(parts) < 2 or ".." in parts:
        raise SandboxError(
            f"the payload path {options.payload_path!r} is not an absolute path below /"
        )
    if parts[1] in SPECIAL_DIRECTORIES:
        raise SandboxError(f"the payload path {options.payload_path} is inside /{parts[1]}")
    if not os.path.isdir(options.payload_dir):
        raise SandboxError(f"the payload directory {options.payload_dir} is not a directory")


def main(argv: Sequence[str]) -> int:
    """Runs the command confined; returns its exit code, or ours when it could not run."""
    try:
        options = _parse(argv)
        _close_inherited_fds()
        if not options.isolate:
            if options.user is not None:
                _become(options.user)
            _die_with_parent(options.parent)  # after the user change, which would clear it
            return _exec(options.command, dict(os.environ))
        _die_with_parent(options.parent)
        return _launch(options)
    except Exception as exc:
        # Whatever went wrong, the command has not run: say so in one line, with our exit code.
        print(f"sandbox: {exc}", file=sys.stderr)
        return SETUP_FAILED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
