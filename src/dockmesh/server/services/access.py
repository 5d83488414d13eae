"""Who may do what on which host: the one place that decides (issue 11).

A caller is a user with the roles in force for this request (a login: every role the user holds; a script
token: its own roles that its owner still holds). A role is a set of permissions and a host scope (a
selector, `server/selector.py`; empty = every host). The caller's rights on a host are the union of the
permissions of the roles whose scope matches the host's id, name and tags.

- A host where the caller has no right at all is invisible: addressed, it is a 404 exactly like an unknown
  host; in fan-out lists and the dashboard it is left out, `hosts` included.
- A visible host where the needed permission is missing is a 403.
- Global permissions (`users.manage`, `registries.manage`, and `agents.manage` for enrolling new agents) come
  only from roles whose scope is every host.

Rights are computed from the roles loaded with the caller on every request (no cache across requests), so a
retag or a role change applies to the very next request.

Built-in roles (fixed here; their rows in the store carry only the name):
- admin: every permission, every host. Also the only role that may set `allow_privileged` on a stack.
- operator: hosts.view, containers.view, containers.manage, containers.exec, stacks.view, stacks.deploy.
- viewer: hosts.view, containers.view, stacks.view.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockmesh.server.selector import Everything, Selector, SelectorError, parse
from dockmesh.server.services.errors import Forbidden, NotFound
from dockmesh.store.users import RoleRecord, UserRecord

if TYPE_CHECKING:
    from dockmesh.server.directory import HostRef

Caller = UserRecord

HOSTS_VIEW = "hosts.view"
HOSTS_MANAGE = "hosts.manage"  # tags, cordon, drain
CONTAINERS_VIEW = "containers.view"  # containers, images, volumes, networks; logs and stats
CONTAINERS_MANAGE = "containers.manage"  # actions, and create/remove/pull/prune of images, volumes, networks
CONTAINERS_EXEC = "containers.exec"
STACKS_VIEW = "stacks.view"
STACKS_DEPLOY = "stacks.deploy"  # save, deploy, stop, start, remove
AGENTS_MANAGE = "agents.manage"
REGISTRIES_MANAGE = "registries.manage"
USERS_MANAGE = "users.manage"

PERMISSIONS: tuple[str, ...] = (
    HOSTS_VIEW,
    HOSTS_MANAGE,
    CONTAINERS_VIEW,
    CONTAINERS_MANAGE,
    CONTAINERS_EXEC,
    STACKS_VIEW,
    STACKS_DEPLOY,
    AGENTS_MANAGE,
    REGISTRIES_MANAGE,
    USERS_MANAGE,
)

ADMIN = "admin"
BUILTIN: dict[str, frozenset[str]] = {
    ADMIN: frozenset(PERMISSIONS),
    "operator": frozenset(
        {HOSTS_VIEW, CONTAINERS_VIEW, CONTAINERS_MANAGE, CONTAINERS_EXEC, STACKS_VIEW, STACKS_DEPLOY}
    ),
    "viewer": frozenset({HOSTS_VIEW, CONTAINERS_VIEW, STACKS_VIEW}),
}


_ADMIN_ROLE = RoleRecord(0, ADMIN, (), "", True)


def _held(caller: Caller) -> tuple[RoleRecord, ...]:
    """The caller's roles. `is_admin` is derived from the roles by the store (a script token without
    `admin` is not an administrator); a record built with it alone (tests, tools) counts as holding it."""
    if caller.is_admin and not any(r.builtin and r.name == ADMIN for r in caller.roles):
        return (*caller.roles, _ADMIN_ROLE)
    return caller.roles


def permissions_of(role: RoleRecord) -> frozenset[str]:
    if role.builtin:
        return BUILTIN.get(role.name, frozenset())
    return frozenset(role.permissions)


def scope_of(role: RoleRecord) -> Selector:
    return _parsed(role.scope)


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Selector:
    """Parsing is pure (text in, tree out), so memoising it caches no rights: those are computed per call."""
    try:
        return parse(text)
    except SelectorError:
        # Stored scopes were parsed when saved; one that no longer parses reaches nothing rather than all.
        return Selector("not", args=(Everything,))


def rights(caller: Caller, host_id: str, name: str, tags: Iterable[str]) -> frozenset[str]:
    """The union of the permissions of the caller's roles whose scope matches this host."""
    tag_set = frozenset(tags)
    out: set[str] = set()
    for role in _held(caller):
        if scope_of(role).matches(host_id, name, tag_set):
            out |= permissions_of(role)
    return frozenset(out)


def rights_on(caller: Caller, host: HostRef) -> frozenset[str]:
    return rights(caller, host.id, host.name, host.tags)


def has_global(caller: Caller, permission: str) -> bool:
    """A permission not tied to one host: granted only by a role that reaches every host."""
    return any(permission in permissions_of(r) and scope_of(r).op == "all" for r in _held(caller))


def require_global(caller: Caller, permission: str) -> None:
    if not has_global(caller, permission):
        raise Forbidden("forbidden", f"this needs the {permission!r} permission on every host")


def has_any(caller: Caller, permission: str) -> bool:
    """The caller holds `permission` on some hosts (for records not bound to a host, e.g. a stack's)."""
    return any(permission in permissions_of(r) for r in _held(caller))


def require_any(caller: Caller, permission: str) -> None:
    if not has_any(caller, permission):
        raise Forbidden("forbidden", f"this needs the {permission!r} permission")


def is_admin(caller: Caller) -> bool:
    return any(r.builtin and r.name == ADMIN for r in _held(caller))


def can_allow_privileged(caller: Caller) -> bool:
    """Only an administrator may let a stack run privileged containers, bind `/` or the Docker socket."""
    return is_admin(caller)


def require_allow_privileged(caller: Caller) -> None:
    if not can_allow_privileged(caller):
        raise Forbidden("forbidden", "only an administrator may set allow_privileged on a stack")


def not_found(host_id: str) -> NotFound:
    """The same answer an unknown host gets: an out-of-scope host must not be told apart from it."""
    return NotFound("host_not_found", f"no host with id {host_id!r}")


def check(caller: Caller, host_id: str, name: str, tags: Iterable[str], permission: str) -> None:
    granted = rights(caller, host_id, name, tags)
    if not granted:
        raise not_found(host_id)
    if permission not in granted:
        raise Forbidden("forbidden", f"this needs the {permission!r} permission on host {name!r}")


def check_host(caller: Caller, host: HostRef, permission: str) -> None:
    """The caller may use `permission` (e.g. `stacks.deploy`) on `host`: else 404 (invisible) or 403."""
    check(caller, host.id, host.name, host.tags, permission)


def visible(caller: Caller, host: HostRef) -> bool:
    return bool(rights_on(caller, host))


def allowed(caller: Caller, hosts: Sequence[HostRef], permission: str) -> list[HostRef]:
    """The hosts on which the caller holds `permission` (a fan-out list shows only these)."""
    return [h for h in hosts if permission in rights_on(caller, h)]


@dataclass(frozen=True)
class HostAccess:
    id: str
    name: str
    tags: tuple[str, ...]
    permissions: tuple[str, ...]


def effective(caller: Caller, hosts: Sequence[HostRef]) -> list[HostAccess]:
    """Every host the caller reaches, and what it may do on each (the "effective access" view)."""
    out = []
    for host in hosts:
        granted = rights_on(caller, host)
        if granted:
            out.append(HostAccess(host.id, host.name, host.tags, tuple(sorted(granted))))
    return out


def global_permissions(caller: Caller) -> list[str]:
    return sorted(p for p in PERMISSIONS if has_global(caller, p))


def check_permission(caller: Caller, permission: str) -> None:
    """The caller holds `permission` for something not on a host (e.g. `registries.manage`): a global one."""
    require_global(caller, permission)
