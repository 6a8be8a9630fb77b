"""Our additions to Radix's API (logs, events, results, restart, schedules), as swagger: each
module here declares `PATHS` (operations under the `Scheduler` tag) and may declare `MODELS` (wire
models its operations use). They are found by name, so a new addition is a new module."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from pydantic import BaseModel

TAG = "Scheduler"


def _modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
    ]


def paths() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module in _modules():
        for path, operations in getattr(module, "PATHS", {}).items():
            found.setdefault(path, {}).update(operations)
    return found


def models() -> tuple[type[BaseModel], ...]:
    return tuple(model for module in _modules() for model in getattr(module, "MODELS", ()))
