"""One exception tree for everything a link user can see."""

from __future__ import annotations


class LinkError(Exception):
    """Base of every link failure."""


class LinkClosed(LinkError):
    """The link went away before the operation finished."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"link closed ({code}: {reason})" if code else "link closed")
        self.code = code
        self.reason = reason


class RequestTimeout(LinkError):
    """The peer did not answer before the deadline; the request was cancelled on its side."""


class RemoteError(LinkError):
    """The peer answered with an error body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
