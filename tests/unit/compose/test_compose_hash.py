"""Service.config_hash: stable across key order and unrelated edits, changed by the service's config."""

from __future__ import annotations

from dockmesh.compose import load_project

BASE = """\
services:
  a:
    image: x
    environment: {A: 1, B: 2}
    labels: [l=1]
    networks: [n]
  b:
    image: y
networks:
  n:
"""


def hashes(text: str, env: str | None = None) -> dict[str, str]:
    return {k: s.config_hash for k, s in load_project("demo", text, env).services.items()}


def test_hash_is_a_sha256_and_stable() -> None:
    first = hashes(BASE)
    assert first == hashes(BASE)
    assert all(len(h) == 64 for h in first.values())
    assert first["a"] != first["b"]


def test_key_order_and_formatting_do_not_matter() -> None:
    reordered = """\
networks: {n: null}
services:
  b: {image: y}
  a:
    networks: [n]
    labels: {l: '1'}
    environment: [B=2, A=1]
    image: x
"""
    assert hashes(reordered) == hashes(BASE)


def test_changing_one_service_changes_only_its_hash() -> None:
    changed = hashes(BASE.replace("B: 2", "B: 3"))
    base = hashes(BASE)
    assert changed["a"] != base["a"]
    assert changed["b"] == base["b"]


def test_env_values_reach_the_hash() -> None:
    text = BASE.replace("B: 2", "B: '${B}'")
    assert hashes(text, "B=1")["a"] != hashes(text, "B=2")["a"]


def test_start_order_does_not_recreate() -> None:
    with_dep = BASE.replace("    image: y\n", "    image: y\n    depends_on: [a]\n")
    assert hashes(with_dep) == hashes(BASE)


def test_renamed_network_recreates_its_users() -> None:
    renamed = BASE.replace("  n:\n", "  n:\n    name: other\n")
    assert hashes(renamed)["a"] != hashes(BASE)["a"]
    assert hashes(renamed)["b"] == hashes(BASE)["b"]


def test_the_project_name_is_not_in_the_hash_but_its_objects_are() -> None:
    assert load_project("one", "services:\n  b: {image: y, network_mode: none}\n").services[
        "b"
    ].config_hash == (
        load_project("two", "services:\n  b: {image: y, network_mode: none}\n").services["b"].config_hash
    )
