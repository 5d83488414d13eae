"""Registry credentials, pure part: image references, credential addresses, and which credential a host gets.

Image references follow Docker's rules: the first path component names a registry only when it holds a
`.` or a `:` or is `localhost`; otherwise the image lives on Docker Hub (`docker.io`, whose one-component
names sit under `library/`). `index.docker.io` and `registry-1.docker.io` are Docker Hub too.

A credential's address is `host[:port][/path]`: without a path it covers every repository of the registry,
with one only the repositories under that path (`ghcr.io/acme` covers `ghcr.io/acme/app`, not
`ghcr.io/other/app`).

Selection rule (docs/registries.md): for an image pulled on a host, the candidates are the credentials of
the image's registry whose path covers the repository and whose scope matches the host; the first by
(1) a scoped credential before an unscoped one (`all`), (2) the longer path first, (3) the older (lower id)
first. A stack's deploy sends one credential per registry (the agent keys them by registry): the best
ranked among those its images picked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from dockmesh.server.selector import Selector

__all__ = [
    "DOCKER_HUB",
    "Address",
    "AddressError",
    "Candidate",
    "ImageRef",
    "parse_address",
    "parse_image",
    "pick",
    "pick_for_images",
]

DOCKER_HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HUB_SERVER = "https://index.docker.io/v1/"  # what the engine and `docker login` call Docker Hub
MAX_ADDRESS = 255

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL})(?:\.{_LABEL})*")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


class AddressError(ValueError):
    """A credential address that is not `host[:port][/path]`."""


@dataclass(frozen=True)
class ImageRef:
    """`raw_registry` is the registry part as written (what the agent keys credentials by); `registry` is
    it lower-cased with Docker Hub's aliases folded; `repository` is the path without tag or digest."""

    raw_registry: str
    registry: str
    repository: str


def _canonical_registry(host: str) -> str:
    host = host.lower()
    return DOCKER_HUB if host in HUB_ALIASES else host


def parse_image(ref: str) -> ImageRef:
    """Split an image reference; an image id (`sha256:…`) or a bare name is a Docker Hub one."""
    name = ref.split("@", 1)[0]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        raw, path = first, rest
    else:
        raw, path = DOCKER_HUB, name
    last = path.rsplit("/", 1)
    if ":" in last[-1]:  # a tag (a port can only be in the registry part, split off above)
        path = path[: len(path) - len(last[-1])] + last[-1].split(":", 1)[0]
    registry = _canonical_registry(raw)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageRef(raw, registry, path)


@dataclass(frozen=True)
class Address:
    """A credential's normalised address: `registry` (canonical host[:port]) and `path` ("" for all)."""

    registry: str
    path: str

    @property
    def text(self) -> str:
        return f"{self.registry}/{self.path}" if self.path else self.registry

    @property
    def server(self) -> str:
        """The `serveraddress` the engine is given with the credential."""
        return HUB_SERVER if self.registry == DOCKER_HUB else self.registry

    def covers(self, image: ImageRef) -> bool:
        if image.registry != self.registry:
            return False
        return not self.path or image.repository == self.path or image.repository.startswith(self.path + "/")


def parse_address(text: str) -> Address:
    """`host[:port][/path]`, an `https://` or `http://` prefix and a trailing `/` tolerated (pasted URLs);
    Docker Hub's `https://index.docker.io/v1/` is Docker Hub."""
    if not isinstance(text, str) or not text.strip():
        raise AddressError("the registry address is empty: give host[:port][/path], e.g. ghcr.io/acme")
    value = text.strip()
    if len(value) > MAX_ADDRESS:
        raise AddressError(f"the registry address is longer than {MAX_ADDRESS} characters")
    lowered = value.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            value = value[len(scheme) :]
            break
    value = value.rstrip("/")
    hostport, _sep, path = value.partition("/")
    host, colon, port = hostport.partition(":")
    host = host.lower()
    if not _HOST.fullmatch(host):
        raise AddressError(
            f"{hostport!r} is not a registry host: give host[:port], e.g. registry.example:5000"
        )
    if colon and (not port.isdigit() or not 0 < int(port) < 65536 or port.startswith("0")):
        raise AddressError(f"{port!r} is not a port (1-65535)")
    registry = _canonical_registry(f"{host}:{port}" if colon else host)
    if registry == DOCKER_HUB and path == "v1":
        path = ""
    if path and not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise AddressError(
            f"{path!r} is not a repository path: lower-case components such as acme/team, separated by '/'"
        )
    return Address(registry, path)


@dataclass(frozen=True)
class Candidate:
    """What selection needs of a stored credential (no secret)."""

    id: int
    address: Address
    scope: Selector

    def rank(self) -> tuple[int, int, int]:
        return (0 if self.scope.op != "all" else 1, -len(self.address.path), self.id)


def pick(
    candidates: Iterable[Candidate], image: ImageRef, host_id: str, name: str, tags: Collection[str]
) -> Candidate | None:
    """The credential for pulling `image` on the host, by the rule in this module's docstring."""
    fits = [c for c in candidates if c.address.covers(image) and c.scope.matches(host_id, name, tags)]
    return min(fits, key=Candidate.rank, default=None)


def pick_for_images(
    candidates: Iterable[Candidate], images: Iterable[str], host_id: str, name: str, tags: Collection[str]
) -> dict[str, Candidate]:
    """One credential per registry the images name (keyed as written, as the agent looks them up)."""
    pool = list(candidates)
    chosen: dict[str, Candidate] = {}
    for ref in images:
        image = parse_image(ref)
        best = pick(pool, image, host_id, name, tags)
        if best is None:
            continue
        held = chosen.get(image.raw_registry)
        if held is None or best.rank() < held.rank():
            chosen[image.raw_registry] = best
    return chosen
