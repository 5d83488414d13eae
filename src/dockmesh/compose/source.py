"""YAML text to plain data, with the line of every key and list item kept for error messages.

PyYAML composes a node graph first; we build the data from it ourselves so that each path keeps its
line, and so that aliases are counted as what they expand to: an alias "bomb" (billion laughs) is a few
hundred bytes that would expand to gigabytes, so the expansion is bounded, not the text alone.
"""

from __future__ import annotations

from typing import Any, Union

import yaml

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.limits import MAX_TEXT

__all__ = ["MAX_NODES", "MAX_TEXT", "Lines", "Path", "dotted", "parse"]

#: Values after alias expansion; real compose files have a few thousand.
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[Union[str, int], ...]  # evaluated at run time: no `|` on Python 3.9


class Lines:
    """1-based line of each path in the document (keys and list items)."""

    def __init__(self) -> None:
        self._lines: dict[Path, int] = {}

    def set(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def get(self, path: Path) -> int | None:
        # A generated or missing path takes the line of its nearest ancestor that has one.
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines = Lines()
        self.count = 0

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise ComposeError(
                "invalid_compose",
                f"the compose file expands to more than {MAX_NODES} values (YAML aliases?)",
                key=dotted(path) or None,
                line=node.start_mark.line + 1,
            )
        if depth > MAX_DEPTH:
            raise ComposeError("invalid_compose", "the compose file is nested too deeply", line=_line(node))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # YAML merge keys (<<), which compose files use
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node)
                if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    raise ComposeError(
                        "invalid_compose",
                        "mapping keys must be strings",
                        key=dotted(path),
                        line=_line(key_node),
                    )
                key = str(key)
                if key in result:
                    raise ComposeError(
                        "invalid_compose",
                        f"duplicate key {key!r}",
                        key=dotted((*path, key)),
                        line=_line(key_node),
                    )
                self.lines.set((*path, key), _line(key_node))
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines.set((*path, i), _line(item))
                items.append(self.build(item, (*path, i), depth + 1))
            return items
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise ComposeError("invalid_compose", "mapping keys must be strings", line=_line(node))
        value = self.loader.construct_object(node, deep=True)
        # YAML 1.1 reads 22:22 as a base-60 integer; in compose it is always a port or time string.
        if node.tag.endswith((":int", ":float")) and ":" in node.value:
            return node.value
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return str(node.value)  # timestamps, binary: compose means the text


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def parse(text: str) -> tuple[Any, Lines]:
    """The document's data and its lines; ComposeError for anything YAML rejects."""
    if len(text.encode()) > MAX_TEXT:
        raise ComposeError("invalid_compose", f"the compose file is larger than {MAX_TEXT} bytes")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ComposeError("invalid_compose", "the compose file is empty")
        builder = _Builder(loader)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise ComposeError(
            "invalid_compose", f"invalid YAML: {problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ComposeError("invalid_compose", f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, builder.lines
