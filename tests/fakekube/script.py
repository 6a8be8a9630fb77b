"""What a fake container does, read from its command: `sh -c "echo hi; sleep 2; exit 3"`.

Statements separated by `;`, `&&`, `||` or newlines are understood when they are `echo`, `sleep`,
`exit`, `true` or `false`; others are skipped. `cat PATH` prints a file of a mounted volume (a
Secret, a projected volume, an emptyDir), `sha256sum PATH` its checksum as coreutils does
(`<hex>  PATH`), `wc -c PATH` and `wc -c < PATH` its size (`<bytes> PATH`, `<bytes>`); and
`echo ...` or `cat PATH` followed by `> FILE` (or `>> FILE`) write FILE instead of the log (only
the termination log, /dev/termination-log, is kept). A command that is not such a script runs
briefly and exits 0, so any image "works".
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_RUN_SECONDS = 0.1
_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash")


@dataclass(frozen=True, slots=True)
class Echo:
    text: str
    newline: bool = True  # false for `echo -n`


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Cat:
    path: str


@dataclass(frozen=True, slots=True)
class Write:
    """`echo ... > FILE`, `cat PATH >> FILE`: the output goes to FILE, not to the log."""

    output: Echo | Cat
    path: str
    append: bool


@dataclass(frozen=True, slots=True)
class Sha256:
    """`sha256sum PATH`."""

    path: str


@dataclass(frozen=True, slots=True)
class Size:
    """`wc -c PATH` (`named`), or `wc -c < PATH`."""

    path: str
    named: bool


Step = Echo | Sleep | Cat | Write | Sha256 | Size


@dataclass(frozen=True, slots=True)
class Script:
    steps: tuple[Step, ...]
    exit_code: int


def _statements(script: str) -> list[str]:
    return [s.strip() for s in re.split(r";|&&|\|\||\n", script) if s.strip()]


def parse_script(script: str) -> Script:
    steps: list[Step] = []
    status = 0
    for statement in _statements(script):
        try:
            words = shlex.split(statement)
        except ValueError:
            words = statement.split()
        if not words:
            continue
        if written := _written(words):
            steps.append(written)
            status = 0
            continue
        match words[0], words[1:]:
            case "echo", rest:
                steps.append(Echo(" ".join(w for w in rest if w != "-n")))
                status = 0
            case "sleep", [seconds, *_] if re.fullmatch(r"\d+(\.\d*)?|\.\d+", seconds):
                steps.append(Sleep(float(seconds)))
                status = 0
            case "exit", [code, *_] if code.lstrip("-").isdigit():
                return Script(tuple(steps), int(code) % 256)
            case "exit", []:
                return Script(tuple(steps), status)
            case "cat", [path]:
                steps.append(Cat(path))
                status = 0
            case "sha256sum", [path]:
                steps.append(Sha256(path))
                status = 0
            case "wc", ["-c", path]:
                steps.append(Size(path, named=True))
                status = 0
            case "wc", ["-c", "<", path]:
                steps.append(Size(path, named=False))
                status = 0
            case "true" | ":", _:
                status = 0
            case "false", _:
                status = 1
            case _:
                continue
    return Script(tuple(steps), status)


def _written(words: list[str]) -> Write | None:
    """`echo ... > FILE` or `cat PATH >> FILE` as a step; None for any other statement."""
    for index, word in enumerate(words):
        if word in (">", ">>") and index + 1 < len(words):
            command, target = words[:index], words[index + 1]
            if command[:1] == ["echo"]:
                rest = command[1:]
                output: Echo | Cat = Echo(" ".join(w for w in rest if w != "-n"), "-n" not in rest)
            elif len(command) == 2 and command[0] == "cat":
                output = Cat(command[1])
            else:
                return None
            return Write(output, target, append=word == ">>")
    return None


def container_script(container: dict[str, Any]) -> Script:
    """The behaviour of a container from its `command` and `args`."""
    argv: Sequence[str] = [str(a) for a in (container.get("command") or [])]
    argv = [*argv, *(str(a) for a in container.get("args") or [])]
    if argv and argv[0] in _SHELLS and "-c" in argv[1:]:
        index = argv.index("-c")
        if index + 1 < len(argv):
            return parse_script(argv[index + 1])
    if argv and argv[0] in ("sleep", "/bin/sleep"):
        return parse_script(" ".join(argv))
    return Script((Sleep(DEFAULT_RUN_SECONDS),), 0)
