"""Who may do what: the checks issue 11 (roles and scopes) tightens, each in one function.

Today every user is an administrator in effect; the checks are still made at every call so the RBAC work
changes these functions, not their callers.
"""

from __future__ import annotations

from dockmesh.server.directory import HostRef
from dockmesh.server.services.errors import Forbidden
from dockmesh.store.users import UserRecord

Caller = UserRecord


def can_allow_privileged(caller: Caller) -> bool:
    """Only an administrator may let a stack run privileged containers, bind `/` or the Docker socket."""
    return caller.is_admin


def require_allow_privileged(caller: Caller) -> None:
    if not can_allow_privileged(caller):
        raise Forbidden("forbidden", "only an administrator may set allow_privileged on a stack")


def check_host(caller: Caller, host: HostRef, permission: str) -> None:
    """The caller may use `permission` (e.g. `stacks.deploy`) on `host`.

    Every user reaches every host until roles exist (issue 11); out-of-scope hosts will then be a 404.
    """
    del caller, host, permission


def check_permission(caller: Caller, permission: str) -> None:
    """The caller holds `permission` for something that is not on a host (e.g. `registries.manage`).

    Until roles exist (issue 11, the RBAC branch) only an administrator holds these.
    """
    if not caller.is_admin:
        raise Forbidden("forbidden", f"this needs the permission {permission}")
