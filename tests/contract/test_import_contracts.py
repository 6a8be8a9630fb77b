"""The layers are import-linter contracts (`[tool.importlinter]` in pyproject.toml, run by
`scripts/test`). These tests show that the contracts catch the crossings the house review found
in a copy of the package with one such import added, and that the package as it is keeps them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_contract() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


# (module that gains the import, the import, the contract that must break)
CROSSINGS = [
    (
        "domain/view.py",
        "import scheduler.api.keys",
        "Floors point one way",
    ),
    (
        "settings.py",
        "import scheduler.backends.local.store",
        "Only the composition root knows that the backends exist",
    ),
    (
        "domain/schedules.py",
        "import scheduler.additions.schedules",
        "The domain knows no HTTP and no swagger additions",
    ),
    (
        "backends/local/store.py",
        "import scheduler.backends.kubernetes.records",
        "The two backends never import each other",
    ),
    (
        "domain/jobs.py",
        "import kubernetes.client",
        "The Kubernetes client library is used by the Kubernetes backend's client module",
    ),
]


@pytest.mark.parametrize(("module", "line", "contract"), CROSSINGS, ids=[c[0] for c in CROSSINGS])
def test_an_import_that_crosses_a_floor_fails_the_build(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(
        ROOT / "scheduler", tmp_path / "scheduler", ignore=shutil.ignore_patterns("console")
    )
    target = tmp_path / "scheduler" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    broken = " ".join(run.stdout.split("Broken contracts")[-1].split())
    assert contract in broken
