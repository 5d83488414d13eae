"""How an agent artifact is built: its target platforms and the staged, version-stamped source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dockmesh
from dockmesh.server.artifact import BuildError, build, build_command, source_tree, stage_source
from dockmesh.server.targets import PYTHONS, complete_platform, linux_platforms


def test_targets_are_glibc_2_17_and_never_newer() -> None:
    for arch in ("x86_64", "aarch64"):
        platforms = linux_platforms(arch)
        assert platforms[0] == f"manylinux_2_17_{arch}"
        assert f"manylinux2014_{arch}" in platforms
        assert not [p for p in platforms if p.startswith("manylinux_2_") and int(p.split("_")[2]) > 17]
    assert "manylinux1_x86_64" in linux_platforms("x86_64")
    assert "manylinux1_aarch64" not in linux_platforms("aarch64")  # aarch64 wheels start at 2014


def test_each_python_gets_its_own_abi_then_abi3_then_pure_wheels() -> None:
    assert PYTHONS[0] == (3, 9)
    platform = complete_platform("aarch64", (3, 9))
    tags = platform["compatible_tags"]
    assert tags[0] == "cp39-cp39-manylinux_2_17_aarch64"
    assert "cp39-abi3-manylinux2014_aarch64" in tags
    assert "py3-none-any" in tags
    assert not [t for t in tags if "x86_64" in t or "cp310" in t]
    assert tags.index("cp39-cp39-manylinux_2_17_aarch64") < tags.index("cp39-abi3-manylinux_2_17_aarch64")
    env = platform["marker_environment"]
    assert (env["platform_machine"], env["python_version"], env["sys_platform"]) == (
        "aarch64",
        "3.9",
        "linux",
    )


def test_the_command_targets_every_python_and_boots_with_any_of_them(tmp_path: Path) -> None:
    command = build_command(tmp_path / "src", tmp_path / "out.pex", "aarch64")
    platforms = [json.loads(command[i + 1]) for i, arg in enumerate(command) if arg == "--complete-platform"]
    assert [p["marker_environment"]["python_version"] for p in platforms] == [
        "3.9",
        "3.10",
        "3.11",
        "3.12",
        "3.13",
    ]
    assert {"--sh-boot", "--venv"} <= set(command)
    assert command[command.index("-c") + 1] == "dockmesh-agent"


def test_the_staged_source_has_the_version_and_no_server(tmp_path: Path) -> None:
    source = source_tree()
    assert source is not None
    staged = stage_source(source, tmp_path, "9.8.7rc1")
    assert 'version = "9.8.7rc1"' in (staged / "pyproject.toml").read_text()
    assert '__version__ = "9.8.7rc1"' in (staged / "src/dockmesh/__init__.py").read_text()
    assert (staged / "src/dockmesh/agent/runner.py").is_file()
    assert not (staged / "src/dockmesh/server").exists()
    assert not (staged / "src/dockmesh/store").exists()
    assert not list(staged.rglob("__pycache__"))
    # The checkout itself is untouched.
    assert dockmesh.__version__ in (source / "src/dockmesh/__init__.py").read_text()


@pytest.mark.parametrize("version", ["", "1.0; rm -rf /", "../1", "1.0\n"])
def test_a_bad_version_is_refused_before_anything_runs(tmp_path: Path, version: str) -> None:
    with pytest.raises(BuildError, match="bad version"):
        stage_source(Path(dockmesh.__file__).parents[2], tmp_path, version)


def test_an_unknown_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no agent build for 'riscv64'"):
        build(tmp_path, "riscv64")
    assert not list(tmp_path.iterdir())
