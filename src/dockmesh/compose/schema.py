"""The supported subset of the Compose specification, as a JSON Schema, and its validation.

Written from the specification's documented semantics (compose-spec.io, "Services top-level elements",
"Networks", "Volumes"); anything outside it is refused with the dotted key and its line, before
anything is touched, rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.source import Lines, dotted

__all__ = ["SCHEMA", "validate"]

_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_STR_OR_STRS = {"type": ["string", "array"], "items": _STR}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
_NUM_OR_STR = {"type": ["string", "number"]}
# list ["K=V"] or map {K: scalar}, as environment and labels allow
_LIST_OR_MAP = {
    "oneOf": [
        {"type": "array", "items": _STR},
        {"type": "object", "additionalProperties": _SCALAR},
    ]
}


def _obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    # x-* keys are the specification's extension fields: allowed anywhere, and ignored.
    return {
        "type": "object",
        "properties": properties,
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
        **extra,
    }


_HEALTHCHECK = _obj(
    {
        "test": _STR_OR_STRS,
        "interval": _STR,
        "timeout": _STR,
        "retries": {"type": "integer", "minimum": 0},
        "start_period": _STR,
        "start_interval": _STR,
        "disable": {"type": "boolean"},
    }
)
_PORT_LONG = _obj(
    {
        "target": {"type": ["integer", "string"]},
        "published": {"type": ["integer", "string"]},
        "host_ip": _STR,
        "protocol": {"enum": ["tcp", "udp", "sctp"]},
        "mode": {"enum": ["host", "ingress"]},
        "name": _STR,
    },
    required=["target"],
)
_VOLUME_LONG = _obj(
    {
        "type": {"enum": ["volume", "bind", "tmpfs"]},
        "source": _STR,
        "target": _STR,
        "read_only": {"type": "boolean"},
        "bind": _obj({"create_host_path": {"type": "boolean"}, "propagation": _STR}),
        "volume": _obj({"nocopy": {"type": "boolean"}}),
        "tmpfs": _obj({"size": _NUM_OR_STR, "mode": {"type": "integer"}}),
    },
    required=["type", "target"],
)
_SERVICE = _obj(
    {
        "image": _STR,
        "command": {"type": ["string", "array", "null"], "items": _STR},
        "entrypoint": {"type": ["string", "array", "null"], "items": _STR},
        "environment": _LIST_OR_MAP,
        "env_file": {"type": ["string", "array"], "items": _STR},
        "ports": {"type": "array", "items": {"oneOf": [{"type": ["string", "integer"]}, _PORT_LONG]}},
        "volumes": {"type": "array", "items": {"oneOf": [_STR, _VOLUME_LONG]}},
        "tmpfs": _STR_OR_STRS,
        "networks": {
            "oneOf": [
                {"type": "array", "items": _STR},
                {
                    "type": "object",
                    "additionalProperties": {
                        "oneOf": [{"type": "null"}, _obj({"aliases": _STRS})],
                    },
                },
            ]
        },
        "network_mode": _STR,
        "labels": _LIST_OR_MAP,
        "restart": _STR,
        "depends_on": {
            "oneOf": [
                {"type": "array", "items": _STR},
                {
                    "type": "object",
                    "additionalProperties": _obj(
                        {
                            "condition": {
                                "enum": [
                                    "service_started",
                                    "service_healthy",
                                    "service_completed_successfully",
                                ]
                            },
                            "required": {"type": "boolean"},
                            "restart": {"type": "boolean"},
                        }
                    ),
                },
            ]
        },
        "healthcheck": _HEALTHCHECK,
        "user": {"type": ["string", "integer"]},
        "working_dir": _STR,
        "hostname": _STR,
        "cap_add": _STRS,
        "cap_drop": _STRS,
        "ulimits": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {"type": "integer"},
                    _obj(
                        {"soft": {"type": "integer"}, "hard": {"type": "integer"}}, required=["soft", "hard"]
                    ),
                ]
            },
        },
        "logging": _obj({"driver": _STR, "options": {"type": "object", "additionalProperties": _SCALAR}}),
        "deploy": _obj({"resources": _obj({"limits": _obj({"cpus": _NUM_OR_STR, "memory": _NUM_OR_STR})})}),
        "profiles": _STRS,
        "privileged": {"type": "boolean"},
        "init": {"type": "boolean"},
        "stop_signal": _STR,
        "stop_grace_period": _STR,
    },
    required=["image"],
)
_NETWORK = {
    "oneOf": [
        {"type": "null"},
        _obj(
            {
                "name": _NAME,
                "driver": _STR,
                "driver_opts": {"type": "object", "additionalProperties": _NUM_OR_STR},
                "external": {"type": "boolean"},
                "internal": {"type": "boolean"},
                "attachable": {"type": "boolean"},
                "labels": _LIST_OR_MAP,
            }
        ),
    ]
}
_VOLUME = {
    "oneOf": [
        {"type": "null"},
        _obj(
            {
                "name": _NAME,
                "driver": _STR,
                "driver_opts": {"type": "object", "additionalProperties": _NUM_OR_STR},
                "external": {"type": "boolean"},
                "labels": _LIST_OR_MAP,
            }
        ),
    ]
}
_KEY = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SCHEMA: dict[str, Any] = _obj(
    {
        "version": _STR,
        "name": _STR,
        "services": {
            "type": "object",
            "propertyNames": {"pattern": _KEY},
            "additionalProperties": _SERVICE,
            "minProperties": 1,
        },
        "networks": {"type": "object", "propertyNames": {"pattern": _KEY}, "additionalProperties": _NETWORK},
        "volumes": {"type": "object", "propertyNames": {"pattern": _KEY}, "additionalProperties": _VOLUME},
    },
    required=["services"],
)

# Keys the specification has that we refuse, with what to do instead. Others get a generic message.
_UNSUPPORTED = {
    "build": "build is not supported: push the image to a registry and name it with image:",
    "secrets": "secrets are not supported yet: pass values through environment and the stack's .env",
    "configs": "configs are not supported yet: bake the file into the image or use a bind mount",
    "extends": "extends is not supported: write the service out in full",
    "include": "include is not supported: put every service in this one file",
    "container_name": "container_name is not supported: containers are named <project>-<service>-1",
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def validate(data: Any, lines: Lines) -> None:
    """Raise ComposeError for the first problem in document order (so the editor shows the top one)."""
    errors = list(_VALIDATOR.iter_errors(data))
    if not errors:
        return
    found = [_to_compose_error(e, lines) for e in errors]
    found.sort(key=lambda e: (e.line if e.line is not None else 1 << 30, e.key or ""))
    raise found[0]


def _to_compose_error(error: jsonschema.ValidationError, lines: Lines) -> ComposeError:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = schema.get("properties", {})
        extra = sorted(k for k in error.instance if k not in allowed and not str(k).startswith("x-"))
        key = (*path, extra[0]) if extra else path
        name = str(key[-1]) if key else ""
        message = _UNSUPPORTED.get(name, f"{name!r} is not a supported key here")
        if name not in _UNSUPPORTED and allowed:
            message += f" (supported: {', '.join(sorted(allowed))})"
        return ComposeError("unsupported_key", message, key=dotted(key), line=lines.get(key))
    if error.validator == "oneOf":
        # The branches' own errors are clearer when one branch is the right type.
        # The branch of the right type is the one the author meant: report its deepest error.
        meant = [e for e in error.context or [] if not (e.validator == "type" and not e.relative_path)]
        if meant:
            return _to_compose_error(max(meant, key=lambda e: len(e.absolute_path)), lines)
        message = f"{_describe(error.instance)} is not a valid value here"
    elif error.validator == "required":
        message = error.message.replace("is a required property", "is required")
    elif error.validator == "propertyNames":
        message = f"invalid name {error.instance!r}: use letters, digits, '_', '.', '-'"
    else:
        message = error.message
    return ComposeError("invalid_compose", message, key=dotted(path) or None, line=lines.get(path))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
