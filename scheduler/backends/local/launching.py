"""How a local job is launched: as which user, with which environment, and through the sandbox
launcher (which confines it, or where namespaces are unavailable only execs it)."""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scheduler.backends.base import Identity
from scheduler.backends.local import sandbox
from scheduler.backends.local.schema import StoredJob

log = logging.getLogger(__name__)

# What a scheduler running as root runs a job as when the job names no runAsUser: nobody.
DEFAULT_RUN_AS_USER = 65534
# The scheduler's variables a job gets, as a container gets a few from its image; the rest (a
# cloud token in the launching shell, the scheduler's own settings) stay the scheduler's.
INHERITED_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
INHERITED_PREFIXES = ("LC_", "RADIX_")
# A job's HOME when its user has none of its own to use.
FALLBACK_HOME = "/tmp"
# Where a sandboxed job of another user than the scheduler's finds its result dir: in a /tmp of
# its own, since the directories above the state dir may be closed to it.
RESULT_DIR_IN_SANDBOX = "/tmp/.job-scheduler/result"
# The variable that tells a job where to write its result, a fresh file per attempt.
RESULT_PATH_VARIABLE = "RADIX_RESULT_PATH"


@dataclass(frozen=True, slots=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    user: tuple[int, int] | None  # who the job runs as when not the scheduler's own user


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """The scheduler's variables that every job gets."""
    return {
        key: value
        for key, value in environ.items()
        if key in INHERITED_VARIABLES or key.startswith(INHERITED_PREFIXES)
    }


def job_user(run_as_user: int | None, euid: int, default_uid: int) -> tuple[int, int] | None:
    """The uid and gid a job runs as; None: as the scheduler. Only root may switch users: then
    the job's runAsUser, or `default_uid` (never root unless asked for) when it names none."""
    if euid != 0:
        return None
    uid = default_uid if run_as_user is None else run_as_user
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid  # a user /etc/passwd does not know: its group has the same number
    return uid, gid


def home_of(user: tuple[int, int] | None, environ: Mapping[str, str]) -> str:
    if user is None or user[0] == os.geteuid():
        return environ.get("HOME", FALLBACK_HOME)
    try:
        home = pwd.getpwuid(user[0]).pw_dir
    except KeyError:
        return FALLBACK_HOME
    return home if os.path.isdir(home) else FALLBACK_HOME


class Launcher:
    """How this scheduler launches its jobs: jobs get a few of the scheduler's variables (PATH,
    LANG, RADIX_*...), then their own and the RADIX_* ones that name them. Under root a job runs
    as its runAsUser, else as this one (never root unless asked); with `switch_user` False, as
    root (for tests whose jobs write to private places)."""

    def __init__(
        self,
        identity: Identity,
        *,
        state_dir: Path,
        environ: Mapping[str, str],
        default_run_as_user: int,
        switch_user: bool,
    ) -> None:
        self._identity = identity
        self._state_dir = state_dir
        self._environ = dict(environ)
        self._inherited = inherited(self._environ)
        self._default_run_as_user = default_run_as_user
        self._switch_user = switch_user
        self._sandbox_problem: str | None = None

    async def probe(self) -> None:
        """Whether the sandbox works here: if not, jobs run unconfined, and the log says so."""
        self._sandbox_problem = await sandbox.probe()
        if self._sandbox_problem is not None:
            log.warning(
                "payloads cannot be mounted at their payload.path here (%s); jobs find their "
                "payload directory in RADIX_PAYLOAD_PATH instead",
                self._sandbox_problem,
            )

    def prepare(self, job: StoredJob, result_path: Path) -> Launch:
        """How to run `job`'s command for an attempt that writes its result to `result_path`."""
        request = job.request
        command = [*(request.command or ()), *(request.args or ())]
        user = self._job_user(request.run_as_user)
        env = {
            **self._inherited,
            "HOME": home_of(user, self._environ),
            **request.env,
            "RADIX_JOB_NAME": job.name,
            "RADIX_APP": self._identity.app,
            "RADIX_ENVIRONMENT": self._identity.environment,
            "RADIX_COMPONENT": self._identity.component,
        }
        payload = None
        if request.payload_path is not None and job.payload_file is not None:
            payload = (job.payload_file.parent, request.payload_path)
        return _launch(
            command,
            env=env,
            user=user,
            payload=payload,
            state_dir=self._state_dir,
            result_path=result_path,
            sandboxed=self._sandbox_problem is None,
        )

    def _job_user(self, run_as_user: int | None) -> tuple[int, int] | None:
        if not self._switch_user:
            return None
        return job_user(run_as_user, os.geteuid(), self._default_run_as_user)


def _launch(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    user: tuple[int, int] | None,
    payload: tuple[Path, str] | None,
    state_dir: Path,
    result_path: Path,
    sandboxed: bool,
) -> Launch:
    """`env`: the job's own variables over the inherited ones. `payload`: its payload dir and
    payload path. Sandboxed, it sees the state dir empty but for its own result dir (elsewhere
    when it runs as another user), and `RESULT_PATH_VARIABLE` says where its result goes."""
    variables = dict(env)
    variables[RESULT_PATH_VARIABLE] = str(result_path)
    if sandboxed:
        payload_dir, payload_path = payload if payload is not None else (None, None)
        moved = user is not None and user[0] != os.geteuid()
        argv = sandbox.sandbox_argv(
            payload_dir,
            payload_path,
            command,
            hide=state_dir,
            expose=result_path.parent,
            expose_at=RESULT_DIR_IN_SANDBOX if moved else None,
            user=user,
        )
        if moved:
            variables[RESULT_PATH_VARIABLE] = f"{RESULT_DIR_IN_SANDBOX}/{result_path.name}"
        if payload is not None:
            variables[sandbox.PAYLOAD_PATH_VARIABLE] = payload[1]
    else:
        argv = sandbox.sandbox_argv(None, None, command, user=user, isolate=False)
        if payload is not None:
            variables.update(sandbox.fallback_env(payload[0]))
    return Launch(argv, variables, user)


def hand_over(paths: Sequence[Path], user: tuple[int, int] | None) -> None:
    """Makes the job's own files (its payload, its result dir) its user's."""
    if user is None:
        return
    for path in paths:
        if path.exists():
            os.chown(path, *user, follow_symlinks=False)
