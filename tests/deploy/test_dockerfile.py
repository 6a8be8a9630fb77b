"""The Dockerfile, checked without a Docker engine: it lints clean, copies files that exist and
the build context keeps, starts the declared console script, and runs as a non-root user."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"

Instruction = tuple[str, str]  # (keyword, arguments)


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    parsed = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def final_stage() -> list[Instruction]:
    found = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(found) if keyword == "FROM")
    return found[last_from:]


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and line[0] != "#"]


def is_ignored(path: str) -> bool:
    """Whether a .dockerignore entry names `path` or a folder holding it (no globs needed here)."""
    return any(path == p or path.startswith(f"{p}/") for p in dockerignore_patterns())


def copied_sources() -> list[str]:
    sources = []
    for keyword, arguments in instructions():
        if keyword in ("COPY", "ADD"):
            words = arguments.split()
            if any(word.startswith("--from=") for word in words):
                continue
            sources += [word for word in words[:-1] if not word.startswith("--")]
    return sources


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_stages_start_from_a_tagged_python_3_11_slim() -> None:
    images = [arguments.split()[0] for keyword, arguments in instructions() if keyword == "FROM"]
    assert images == ["python:3.11-slim", "python:3.11-slim"]


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not is_ignored(source.rstrip("/")), f"COPY {source}: .dockerignore leaves it out"


def test_entrypoint_runs_the_console_script_declared_in_pyproject() -> None:
    entrypoints = [arguments for keyword, arguments in final_stage() if keyword == "ENTRYPOINT"]
    assert entrypoints, "the final stage has no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["job-scheduler"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["job-scheduler"] == "scheduler.__main__:main"
    assert (REPO / "scheduler" / "__main__.py").is_file(), "scheduler/__main__.py is missing"


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final stage runs as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == 10001
    assert not gid or (gid.isdigit() and int(gid) == 10001)


def test_final_stage_installs_only_the_built_wheels_and_exposes_the_default_port() -> None:
    stage = final_stage()
    runs = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    assert "pip install --no-index" in runs
    assert ("EXPOSE", "8000") in stage
    env = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


@pytest.mark.parametrize(
    "path", [".git", ".venv", "tests", "tools/node_modules", "bench", "helm", ".pytest_cache"]
)
def test_dockerignore_keeps_local_state_out_of_the_build_context(path: str) -> None:
    assert is_ignored(path)
