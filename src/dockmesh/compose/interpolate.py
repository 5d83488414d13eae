"""Variables: the stack's ``.env`` text, and ``${...}`` substitution in compose values.

Only the ``.env`` text is a source: the agent's (or server's) own environment must never leak into a
stack, so nothing here reads ``os.environ``. Semantics follow the Compose specification's
"Interpolation": ``$VAR``, ``${VAR}``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}``
(unset), ``${VAR:?err}``, ``${VAR?err}``, ``${VAR:+alt}``, ``${VAR+alt}``, ``$$`` for a literal ``$``;
defaults may themselves contain substitutions. An unset variable without a default becomes "".
"""

from __future__ import annotations

import io
import re
from typing import Any

from dotenv.parser import parse_stream

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.source import MAX_TEXT, Lines, Path, dotted

__all__ = ["interpolate", "parse_env"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)


def parse_env(text: str | None) -> dict[str, str]:
    """The variables of a ``.env`` text (python-dotenv's grammar, no interpolation, no os.environ)."""
    if not text:
        return {}
    if len(text.encode()) > MAX_TEXT:
        raise ComposeError("invalid_compose", f"the .env text is larger than {MAX_TEXT} bytes", key=".env")
    env: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ComposeError(
                "invalid_compose",
                f".env line {binding.original.line} is not KEY=VALUE: "
                f"{binding.original.string.strip()[:80]!r}",
                key=".env",
            )
        if binding.key is not None:
            env[binding.key] = binding.value if binding.value is not None else ""
    return env


class _Substitution:
    def __init__(self, env: dict[str, str], lines: Lines) -> None:
        self.env = env
        self.lines = lines

    def fail(self, path: Path, message: str) -> ComposeError:
        return ComposeError("invalid_compose", message, key=dotted(path), line=self.lines.get(path))

    def text(self, value: str, path: Path) -> str:
        out: list[str] = []
        i = 0
        while i < len(value):
            dollar = value.find("$", i)
            if dollar < 0:
                out.append(value[i:])
                break
            out.append(value[i:dollar])
            nxt = value[dollar + 1 : dollar + 2]
            if nxt == "$":
                out.append("$")
                i = dollar + 2
            elif nxt == "{":
                end = self._closing(value, dollar + 2, path)
                out.append(self._braced(value[dollar + 2 : end], path))
                i = end + 1
            elif match := _NAME.match(value, dollar + 1):
                out.append(self.env.get(match.group(), ""))
                i = match.end()
            else:
                raise self.fail(path, f"invalid interpolation in {value!r}: use $$ for a literal $")
        return "".join(out)

    def _closing(self, value: str, start: int, path: Path) -> int:
        depth = 1
        for j in range(start, len(value)):
            if value[j] == "{":
                depth += 1
            elif value[j] == "}":
                depth -= 1
                if depth == 0:
                    return j
        raise self.fail(path, f"unclosed ${{ in {value!r}")

    def _braced(self, inner: str, path: Path) -> str:
        match = _BRACED.fullmatch(inner)
        if match is None:
            raise self.fail(path, f"invalid interpolation ${{{inner}}}")
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = self.env.get(name)
        if op is None:
            return value or ""
        is_set = value is not None
        usable = is_set and (value != "" or not op.startswith(":"))
        kind = op[-1]
        if kind == "-":
            return value if usable and value is not None else self.text(arg, path)
        if kind == "+":
            return self.text(arg, path) if usable else ""
        # "?": a required variable
        if usable and value is not None:
            return value
        reason = self.text(arg, path) or f"variable {name} is required"
        raise self.fail(path, f"{reason} (${{{name}}} is {'empty' if is_set else 'not set'} in .env)")


def interpolate(data: Any, env: dict[str, str], lines: Lines, path: Path = ()) -> Any:
    """``data`` with every string value (not key) substituted."""
    sub = _Substitution(env, lines)

    def walk(value: Any, at: Path) -> Any:
        if isinstance(value, str):
            return sub.text(value, at)
        if isinstance(value, dict):
            return {k: walk(v, (*at, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*at, i)) for i, v in enumerate(value)]
        return value

    return walk(data, path)
