"""Registry credentials, pure part: Docker reference rules, credential addresses, and the selection rule."""

from __future__ import annotations

import pytest

from dockmesh.server.registries import (
    Address,
    AddressError,
    Candidate,
    ImageRef,
    parse_address,
    parse_image,
    pick,
    pick_for_images,
)
from dockmesh.server.selector import parse


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", ImageRef("docker.io", "docker.io", "library/busybox")),
        ("busybox:1.36", ImageRef("docker.io", "docker.io", "library/busybox")),
        ("acme/app:2", ImageRef("docker.io", "docker.io", "acme/app")),
        ("local/busybox:1", ImageRef("docker.io", "docker.io", "local/busybox")),
        ("docker.io/library/nginx", ImageRef("docker.io", "docker.io", "library/nginx")),
        ("index.docker.io/acme/app", ImageRef("index.docker.io", "docker.io", "acme/app")),
        ("Registry-1.Docker.io/acme/app", ImageRef("Registry-1.Docker.io", "docker.io", "acme/app")),
        ("docker.io/nginx", ImageRef("docker.io", "docker.io", "library/nginx")),
        ("ghcr.io/acme/app:1", ImageRef("ghcr.io", "ghcr.io", "acme/app")),
        ("127.0.0.1:5000/dm/secret:1", ImageRef("127.0.0.1:5000", "127.0.0.1:5000", "dm/secret")),
        ("localhost/app", ImageRef("localhost", "localhost", "app")),
        ("localhost:5000/a/b/c@sha256:" + "a" * 64, ImageRef("localhost:5000", "localhost:5000", "a/b/c")),
        ("reg:5000/app:tag@sha256:" + "b" * 64, ImageRef("reg:5000", "reg:5000", "app")),
    ],
)
def test_image_references_follow_docker_rules(ref: str, expected: ImageRef) -> None:
    assert parse_image(ref) == expected


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        ("ghcr.io", "ghcr.io", ""),
        ("GHCR.io/acme", "ghcr.io", "acme"),
        ("https://ghcr.io/acme/team/", "ghcr.io", "acme/team"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", ""),
        ("https://index.docker.io/v1/", "docker.io", ""),
        ("registry-1.docker.io/acme", "docker.io", "acme"),
        ("docker.io", "docker.io", ""),
        ("localhost:5000/a_b/c-d", "localhost:5000", "a_b/c-d"),
    ],
)
def test_addresses_are_normalised(text: str, registry: str, path: str) -> None:
    assert parse_address(text) == Address(registry, path)


@pytest.mark.parametrize(
    "text",
    ["", "  ", "ghcr.io:", "ghcr.io:0", "ghcr.io:65536", "ghcr.io:05", "-bad.io", "a b", "ghcr.io/Acme",
     "ghcr.io/a//b", "ghcr.io/a?x=1", "user@ghcr.io", "ftp://ghcr.io", "x" * 300, "ghcr.io/..", "[::1]:5000"],
)  # fmt: skip
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_address_covers_repositories_under_its_path() -> None:
    acme = parse_address("ghcr.io/acme")
    assert acme.covers(parse_image("ghcr.io/acme/app:1"))
    assert acme.covers(parse_image("ghcr.io/acme"))
    assert not acme.covers(parse_image("ghcr.io/acmex/app"))
    assert not acme.covers(parse_image("ghcr.io/other/app"))
    assert not acme.covers(parse_image("quay.io/acme/app"))
    hub = parse_address("https://index.docker.io/v1/")
    assert hub.covers(parse_image("busybox"))
    assert hub.covers(parse_image("index.docker.io/acme/x"))
    assert hub.server == "https://index.docker.io/v1/"
    assert parse_address("127.0.0.1:5000").server == "127.0.0.1:5000"


def cand(i: int, url: str, scope: str = "") -> Candidate:
    return Candidate(i, parse_address(url), parse(scope))


PROD = ("h1", "web-1", ("prod", "eu"))
DEV = ("h2", "dev-1", ("dev",))


def test_the_scope_must_match_the_host() -> None:
    only_prod = [cand(1, "127.0.0.1:5000", "prod")]
    image = parse_image("127.0.0.1:5000/dm/secret:1")
    assert pick(only_prod, image, *PROD) == only_prod[0]
    assert pick(only_prod, image, *DEV) is None
    assert pick(only_prod, parse_image("127.0.0.1:5001/dm/secret:1"), *PROD) is None
    by_name = [cand(2, "127.0.0.1:5000", "name:dev-1 or id:h9")]
    assert pick(by_name, image, *DEV) == by_name[0]
    assert pick(by_name, image, *PROD) is None


def test_scoped_before_unscoped_then_longer_path_then_older() -> None:
    everyone = cand(1, "ghcr.io")
    prod = cand(2, "ghcr.io", "prod")
    prod_acme = cand(3, "ghcr.io/acme", "prod")
    prod_acme_later = cand(4, "ghcr.io/acme", "prod and eu")
    acme_unscoped = cand(5, "ghcr.io/acme/app")
    pool = [acme_unscoped, prod_acme_later, everyone, prod, prod_acme]
    image = parse_image("ghcr.io/acme/app:1")
    assert pick(pool, image, *PROD) == prod_acme  # scoped, longest path among scoped, older of the two
    assert pick(pool, image, *DEV) == acme_unscoped  # no scoped one matches dev: the longest unscoped path
    assert pick(pool, parse_image("ghcr.io/other/app"), *DEV) == everyone
    assert pick(pool, parse_image("ghcr.io/other/app"), *PROD) == prod


def test_a_deploy_gets_one_credential_per_registry_keyed_as_the_images_write_it() -> None:
    hub = cand(1, "docker.io", "prod")
    ghcr_acme = cand(2, "ghcr.io/acme")
    ghcr_prod = cand(3, "ghcr.io", "prod")
    images = ["index.docker.io/acme/api:1", "busybox", "ghcr.io/acme/web:2", "ghcr.io/other/db:3", "q.io/x"]
    chosen = pick_for_images([hub, ghcr_acme, ghcr_prod], images, *PROD)
    assert chosen == {"index.docker.io": hub, "docker.io": hub, "ghcr.io": ghcr_prod}
    assert pick_for_images([hub, ghcr_acme, ghcr_prod], images, *DEV) == {"ghcr.io": ghcr_acme}
    assert pick_for_images([], images, *PROD) == {}
