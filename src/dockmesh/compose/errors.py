"""The one error a compose file can raise, carrying where in the file the problem is."""

from __future__ import annotations

__all__ = ["ComposeError"]

CODES = frozenset({"invalid_compose", "unsupported_key", "not_allowed"})


class ComposeError(Exception):
    """A compose project that cannot be deployed as written.

    ``code`` is ``invalid_compose``, ``unsupported_key`` or ``not_allowed``; ``key`` the dotted path of the
    offending key (``services.web.build``) or None; ``line`` 1-based in the compose text, or None when the
    problem is not at one place (e.g. the text as a whole, or the ``.env`` text).
    """

    status = 400

    def __init__(self, code: str, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.key = key
        self.line = line

    def __str__(self) -> str:
        where = "".join(
            [f" at {self.key}" if self.key else "", f" (line {self.line})" if self.line is not None else ""]
        )
        return f"{self.message}{where}" if where and (self.key or "") not in self.message else self.message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "key": self.key, "line": self.line}
