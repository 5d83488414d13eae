"""Request bodies checked against the route's own JSON Schema, so the OpenAPI document cannot drift.

Two shapes of refusal live here for now: `check` names the field in the code (`invalid_<field>`, the
volumes/networks/images routes), `validated_body` says `invalid_field` with the dotted key in `details`
(the stacks routes, whose bodies nest). One of them should go when a route passes through both."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web

from dockmesh.server.errors import ApiError, json_body

# Docker's rule for volume and network names; the agent checks it again at its own boundary.
NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}$"
DRIVER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
IMAGE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.\\-/:@]{0,511}$"


def check(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`body` if it matches `schema`; else a 400 `invalid_<field>` naming the field and the rule."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(body))
    if error is None:
        return body
    field = str(error.path[0]) if error.path else ""
    if error.validator == "required":
        field = str(error.message.split("'")[1]) if "'" in error.message else field
    if error.validator == "additionalProperties":
        raise ApiError(400, "invalid_body", f"unknown field: {error.message}")
    hint = schema.get("properties", {}).get(field, {}).get("description", "")
    message = f"'{field}': {error.message}" + (f" ({hint})" if hint else "")
    raise ApiError(400, f"invalid_{field}" if field else "invalid_body", message)


async def validated_body(
    request: web.Request, schema: dict[str, Any], limit: int = 1 << 20
) -> dict[str, Any]:
    """The JSON object of the request, or a 400 `invalid_field` naming the first field that is wrong."""
    body = await json_body(request, limit)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        raise ApiError(400, "invalid_field", f"{where}: {error.message[:300]}", details={"key": where})
    return body
