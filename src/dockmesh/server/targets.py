"""The hosts an agent artifact must run on, as pex complete platforms.

pex's abbreviated platforms (`manylinux2014_x86_64-cp-311-cp311`) cannot evaluate markers such as
`python_full_version` that our dependencies use, and a complete platform generated on this machine
would list its own glibc's manylinux tags (pip would then pick manylinux_2_28 wheels that do not run on
a glibc 2.17 host). So each target is written out here: the PEP 508 marker environment of Linux CPython
3.x on the architecture, and the PEP 425 tags such an interpreter accepts on glibc 2.17, most specific
first (from `packaging.tags`, the same code pip uses).
"""

from __future__ import annotations

import json
from typing import Any

from packaging import tags

# CPython minors the artifact carries wheels for: the agent's floor up to the newest release.
PYTHONS = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13))
ARCHES = ("x86_64", "aarch64")
# glibc 2.17 (manylinux2014: CentOS/RHEL 7 and every mainstream distribution since) is the floor.
GLIBC_MINOR = 17
# The legacy manylinux names and the glibc they stand for (aarch64 wheels start at manylinux2014).
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def linux_platforms(arch: str) -> list[str]:
    """Platform tags a glibc-2.17 Linux host of `arch` accepts, most specific first."""
    out = []
    for minor in range(GLIBC_MINOR, 4, -1):
        out.append(f"manylinux_2_{minor}_{arch}")
        legacy = _LEGACY.get(minor)
        if legacy and (arch == "x86_64" or minor == GLIBC_MINOR):
            out.append(f"{legacy}_{arch}")
    return out


def complete_platform(arch: str, python: tuple[int, int]) -> dict[str, Any]:
    major, minor = python
    platforms = linux_platforms(arch)
    compatible = [
        *tags.cpython_tags(python, platforms=platforms),
        *tags.compatible_tags(python, interpreter=f"cp{major}{minor}", platforms=platforms),
    ]
    return {
        "marker_environment": {
            "implementation_name": "cpython",
            "implementation_version": f"{major}.{minor}.0",
            "os_name": "posix",
            "platform_machine": arch,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": f"{major}.{minor}.0",
            "python_version": f"{major}.{minor}",
            "sys_platform": "linux",
        },
        "compatible_tags": [str(tag) for tag in compatible],
    }


def complete_platforms(arch: str) -> list[str]:
    """One JSON document per CPython minor, as pex's `--complete-platform` takes them."""
    return [json.dumps(complete_platform(arch, python)) for python in PYTHONS]
