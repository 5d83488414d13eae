"""Compose projects: parse, interpolate, validate, normalise, check policy (pure: no Docker, no I/O).

The parsing half (YAML, the JSON schema, .env) loads on first use: the agent imports this package at
start for its limits and error type, and an idle agent should not hold the rest (PEP 562 `__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.limits import MAX_TEXT, PROJECT_NAME

if TYPE_CHECKING:
    from dockmesh.compose.model import Healthcheck, Mount, NetworkSpec, Port, Project, Service, VolumeSpec
    from dockmesh.compose.policy import check_policy
    from dockmesh.compose.project import load_project

_LAZY = {
    "Healthcheck": "model",
    "Mount": "model",
    "NetworkSpec": "model",
    "Port": "model",
    "Project": "model",
    "Service": "model",
    "VolumeSpec": "model",
    "check_policy": "policy",
    "load_project": "project",
}

__all__ = [
    "MAX_TEXT",
    "PROJECT_NAME",
    "ComposeError",
    "Healthcheck",
    "Mount",
    "NetworkSpec",
    "Port",
    "Project",
    "Service",
    "VolumeSpec",
    "check_policy",
    "load_project",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dockmesh.compose' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dockmesh.compose.{module}"), name)
