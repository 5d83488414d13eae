"""Validation on save and before each deploy, by the same parser the agent uses (`dockmesh.compose`)."""

from __future__ import annotations

from dockmesh.compose import ComposeError, check_policy, load_project
from dockmesh.server.services.errors import Invalid


def validate(name: str, compose: str, env: str, *, allow_privileged: bool) -> list[str]:
    """Parse, interpolate, check the schema and the stack's policy; Invalid with `key` and `line`.

    Returns the images the services use (interpolated), for picking registry credentials."""
    try:
        project = load_project(name, compose, env or None)
        check_policy(project, allow_privileged=allow_privileged)
    except ComposeError as exc:
        raise Invalid(exc.code, exc.message, key=exc.key, line=exc.line) from None
    return [service.image for service in project.services.values()]
