"""Request bodies checked against the route's own JSON Schema, so the OpenAPI document cannot drift.

Two shapes of refusal, worded from one schema match (`first_error`): `check` names the field in the code
(`invalid_<field>`, the volumes/networks/images/registries routes), `validated` says `invalid_field` with
the dotted key in `details` (the stacks routes, whose bodies nest). Both are in the API contract and its
tests, so they stay two; one of them should go when the contract changes."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web

from dockmesh.server.errors import ApiError, json_body

# Docker's rule for volume and network names; the agent checks it again at its own boundary.
NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,254}$"
DRIVER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
IMAGE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.\\-/:@]{0,511}$"


def first_error(body: Any, schema: dict[str, Any]) -> jsonschema.ValidationError | None:
    """The most relevant way `body` breaks `schema` (jsonschema's own ranking), or None; both shapes of
    refusal below are worded from it."""
    error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(body)
    )
    return error


def check(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`body` if it matches `schema`; else a 400 `invalid_<field>` naming the field and the rule."""
    error = first_error(body, schema)
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


def validated(body: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`body` if it matches `schema`; else a 400 `invalid_field` with the dotted key in `details`."""
    error = first_error(body, schema)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        raise ApiError(400, "invalid_field", f"{where}: {error.message[:300]}", details={"key": where})
    return body


async def validated_body(
    request: web.Request, schema: dict[str, Any], limit: int = 1 << 20
) -> dict[str, Any]:
    """The JSON object of the request, or a 400 `invalid_field` naming the first field that is wrong."""
    return validated(await json_body(request, limit), schema)
