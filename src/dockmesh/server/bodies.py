"""Request bodies checked against the route's own JSON schema: what OpenAPI documents is what is enforced."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web

from dockmesh.server.errors import ApiError, json_body


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
