"""Compose projects: parse, interpolate, validate, normalise, check policy (pure: no Docker, no I/O)."""

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.model import Healthcheck, Mount, NetworkSpec, Port, Project, Service, VolumeSpec
from dockmesh.compose.policy import check_policy
from dockmesh.compose.project import PROJECT_NAME, load_project
from dockmesh.compose.source import MAX_TEXT

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
