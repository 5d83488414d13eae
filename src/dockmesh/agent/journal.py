"""The record of deploy jobs, in the host's data dir: what a retry with the same deploy id must answer.

A job is written as ``running`` when it starts and with its result when it ends, so a host that died
mid-deploy answers ``failed`` for it after a restart instead of forgetting it (and never runs it twice).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dockmesh.pki.files import write_atomic

__all__ = ["KEEP", "Journal"]

log = logging.getLogger(__name__)

#: Finished jobs remembered; older ids are forgotten (a retry that late deploys again).
KEEP = 256
INTERRUPTED = "the host stopped during the deploy; the stack may be partly updated: deploy again"


class Journal:
    """deploy_id -> result packet (``{"type": "result", "deploy_id", "state", "error", "services"}``).

    Newest last; with no path it lives in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("deploy journal %s unreadable (%s): starting a new one", path, exc)
            return
        changed = False
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("deploy_id"), str):
                if entry.get("state") == "running":
                    entry = {
                        **entry,
                        "state": "failed",
                        "error": {"code": "interrupted", "message": INTERRUPTED},
                    }
                    changed = True
                self._entries[entry["deploy_id"]] = entry
        if changed:
            self._save()

    def get(self, deploy_id: str) -> dict[str, Any] | None:
        return self._entries.get(deploy_id)

    def record(self, result: dict[str, Any]) -> None:
        self._entries.pop(result["deploy_id"], None)
        self._entries[result["deploy_id"]] = result
        while len(self._entries) > KEEP:
            self._entries.popitem(last=False)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(list(self._entries.values())).encode(), 0o600)
