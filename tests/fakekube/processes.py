"""Containers the fake node runs for real: a command that starts with `python` runs as a
subprocess of this interpreter, in the repository (so `python -m scheduler.…` imports the code
under test), its volume mounts and termination log as files of the pod's own directory. Each
argument that starts with a mount path is rewritten to that directory; nothing else is."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
PYTHONS = ("python", "python3", "/usr/bin/python3", "/usr/local/bin/python")
TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int
    output: str  # stdout and stderr, as the container's log
    message: str  # what it wrote to its termination log


def argv_of(container: JSON) -> list[str]:
    return [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in container.get("args") or []
    ]


def runs_for_real(container: JSON) -> bool:
    argv = argv_of(container)
    return bool(argv) and argv[0] in PYTHONS


def rewritten(argv: list[str], mounts: dict[str, str]) -> list[str]:
    """Arguments naming a file under a mount path, naming it in the mount's directory."""
    ordered = sorted(mounts.items(), key=lambda item: -len(item[0]))
    result = []
    for arg in argv:
        for path, host in ordered:
            if arg == path or arg.startswith(path + "/"):
                arg = host + arg[len(path) :]
                break
        result.append(arg)
    return result


async def run(container: JSON, mounts: dict[str, str], pod_dir: Path) -> Outcome:
    """Run the container's command to its end (killed if the pod goes meanwhile)."""
    termination = pod_dir / "termination" / str(container["name"])
    termination.parent.mkdir(parents=True, exist_ok=True)
    termination.unlink(missing_ok=True)
    path = str(container.get("terminationMessagePath") or TERMINATION_LOG)
    argv = rewritten(argv_of(container), {**mounts, path: str(termination)})
    env = {**os.environ}
    env.update({str(e["name"]): str(e.get("value", "")) for e in container.get("env") or ()})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv[1:],
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    message = termination.read_text(errors="replace") if termination.is_file() else ""
    code = process.returncode or 0
    # A signal's end is 128 + the signal, as a container runtime reports it.
    return Outcome(code if code >= 0 else 128 - code, output.decode(errors="replace"), message)
