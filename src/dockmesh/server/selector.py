"""The host selector: one grammar wherever a set of hosts is chosen (design.md §7).

Role scopes, credential scopes, fan-out `?host=`, deploy targets, drain destinations and upgrade waves all
read it, so a scope written for one means the same hosts in every other place.

    expr := term ("or" term)*        term := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | "all" | "name:"NAME | "id:"ID | "tag:"TAG | TAG

Pure: parsing and matching only. A selector is evaluated against a host's id, name and tags.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["Everything", "Selector", "SelectorError", "parse"]

# Bounds: a selector arrives from clients (query strings, role bodies); a hostile one must stay cheap.
MAX_LENGTH = 512
MAX_DEPTH = 32

TAG = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_WORD = re.compile(r"\s*(\(|\)|[^\s()]+)")
_KEYWORDS = frozenset({"and", "or", "not", "all"})


class SelectorError(ValueError):
    """A selector that does not parse; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Selector:
    """A parsed selector node; `text` is its canonical spelling (stable for storage and display)."""

    op: str  # "all", "tag", "name", "id", "not", "and", "or"
    value: str = ""
    args: tuple[Selector, ...] = ()

    def matches(self, host_id: str, name: str, tags: Collection[str]) -> bool:
        if self.op == "all":
            return True
        if self.op == "tag":
            return self.value in tags
        if self.op == "name":
            return self.value == name
        if self.op == "id":
            return self.value == host_id
        if self.op == "not":
            return not self.args[0].matches(host_id, name, tags)
        if self.op == "and":
            return all(a.matches(host_id, name, tags) for a in self.args)
        return any(a.matches(host_id, name, tags) for a in self.args)

    @property
    def text(self) -> str:
        if self.op == "all":
            return "all"
        if self.op == "tag":
            return self.value
        if self.op in ("name", "id"):
            return f"{self.op}:{self.value}"
        if self.op == "not":
            return f"not {self.args[0]._operand()}"
        return f" {self.op} ".join(a._operand() for a in self.args)

    def _operand(self) -> str:
        return f"({self.text})" if self.op in ("and", "or") else self.text

    def __str__(self) -> str:
        return self.text


Everything = Selector("all")


class _Parser:
    def __init__(self, text: str) -> None:
        self.words: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _WORD.match(text, pos)
            if m is None:  # only trailing whitespace is left
                break
            self.words.append((m.group(1), m.start(1)))
            pos = m.end()
        self.i = 0
        self.end = len(text)

    def peek(self) -> str | None:
        return self.words[self.i][0] if self.i < len(self.words) else None

    def where(self) -> int:
        return self.words[self.i][1] if self.i < len(self.words) else self.end

    def take(self) -> str:
        word = self.words[self.i][0]
        self.i += 1
        return word

    def expr(self, depth: int) -> Selector:
        if depth > MAX_DEPTH:
            raise SelectorError(f"selector nests deeper than {MAX_DEPTH}", self.where())
        args = [self.term(depth)]
        while self.peek() == "or":
            self.take()
            args.append(self.term(depth))
        return args[0] if len(args) == 1 else Selector("or", args=tuple(args))

    def term(self, depth: int) -> Selector:
        args = [self.factor(depth)]
        while self.peek() == "and":
            self.take()
            args.append(self.factor(depth))
        return args[0] if len(args) == 1 else Selector("and", args=tuple(args))

    def factor(self, depth: int) -> Selector:
        if depth > MAX_DEPTH:
            raise SelectorError(f"selector nests deeper than {MAX_DEPTH}", self.where())
        word, at = self.peek(), self.where()
        if word is None:
            raise SelectorError("selector ends where a tag, name:, id:, 'not' or '(' was expected", at)
        self.take()
        if word == "not":
            return Selector("not", args=(self.factor(depth + 1),))
        if word == "(":
            inner = self.expr(depth + 1)
            if self.peek() != ")":
                raise SelectorError("missing ')'", self.where())
            self.take()
            return inner
        if word == "all":
            return Everything
        if word in _KEYWORDS or word == ")":
            raise SelectorError(f"unexpected {word!r}", at)
        kind, sep, value = word.partition(":")
        if not sep:
            kind, value = "tag", word
        if kind == "tag":
            if not TAG.fullmatch(value):
                raise SelectorError(f"bad tag {value!r}: lower-case [a-z0-9][a-z0-9-]{{0,31}}", at)
        elif kind in ("name", "id"):
            if not _NAME.fullmatch(value):
                raise SelectorError(f"bad host {kind} {value!r}", at)
        else:
            raise SelectorError(f"unknown selector {kind + ':'!r} (use tag:, name: or id:)", at)
        return Selector(kind, value)


def parse(text: str) -> Selector:
    """Parse a selector; an empty one means every host (an unscoped role reaches everything)."""
    if len(text) > MAX_LENGTH:
        raise SelectorError(f"selector longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(text)
    if not parser.words:
        return Everything
    result = parser.expr(0)
    if parser.peek() is not None:
        raise SelectorError(f"unexpected {parser.peek()!r}", parser.where())
    return result
