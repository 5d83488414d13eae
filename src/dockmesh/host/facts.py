"""Static facts a host reports in its hello."""

from __future__ import annotations

import platform
import socket
from typing import Any

ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}


def normalize_arch(machine: str) -> str:
    machine = machine.lower()
    return ARCH_ALIASES.get(machine, machine)


def host_facts() -> dict[str, Any]:
    """Hostname, OS and architecture of this machine."""
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": normalize_arch(platform.machine()),
        "python": platform.python_version(),
    }
