"""The layers point one way: HTTP knows no Kubernetes, the domain knows neither HTTP nor
Kubernetes, and the `kubernetes` package is imported in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "scheduler"
KUBERNETES_MODULE = "scheduler/backends/kubernetes/client.py"
# Everything but the HTTP layer, the wiring (app, CLI, swagger), the webhook's HTTP client and
# the backends' own packages.
DOMAIN = [
    *sorted(
        str(path.relative_to(PACKAGE))
        for pattern in ("domain/*.py", "models/*.py", "*.py")
        for path in PACKAGE.glob(pattern)
        if path.name not in ("app.py", "__main__.py", "swagger.py", "webhook.py")
    ),
    "backends/base.py",
]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_only_the_kubernetes_backend_imports_the_kubernetes_client(path: Path) -> None:
    if str(path.relative_to(PACKAGE.parent)) == KUBERNETES_MODULE:
        return
    assert not {m for m in imports_of(path) if m.split(".")[0] == "kubernetes"}


@pytest.mark.parametrize("name", DOMAIN)
def test_the_domain_knows_neither_http_nor_kubernetes(name: str) -> None:
    imported = imports_of(PACKAGE / name)
    assert not {m for m in imported if m.split(".")[0] in ("aiohttp", "kubernetes")}
    assert not {
        m for m in imported if m.startswith(("scheduler.api", "scheduler.backends.kubernetes"))
    }


@pytest.mark.parametrize("path", sorted((PACKAGE / "api").glob("*.py")), ids=lambda p: p.name)
def test_the_http_layer_never_reaches_into_the_kubernetes_backend(path: Path) -> None:
    assert not {m for m in imports_of(path) if m.startswith("scheduler.backends.kubernetes")}
