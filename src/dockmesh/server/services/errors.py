"""Domain errors of the service layer, one class per outcome, all on the one base (`ApiError`).

They carry a stable `code` and may carry fields that locate the problem (`key`, `line`): the API puts
them in the JSON error object, a page next to the field it concerns.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dockmesh.server.errors import ApiError


class ServiceError(ApiError):
    status_code: ClassVar[int] = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(self.status_code, code, message, details=details)


class Invalid(ServiceError):
    """The input is wrong; nothing was changed."""


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The request is valid but the current state refuses it (cordoned host, already finished …)."""

    status_code = 409


class TooLarge(ServiceError):
    status_code = 413


class Unavailable(ServiceError):
    """The host that must act is not reachable now."""

    status_code = 503


class HostFailed(ServiceError):
    """The host answered with an error (its words, named)."""

    status_code = 502
