"""Page handlers, one module per area; each declares its routes in a RouteTable tagged "web"."""

from dockmesh.server.web.pages import (
    agents,
    audit,
    auth,
    dashboard,
    drains,
    fleet,
    hosts,
    migrations,
    registries,
    roles,
    stacks,
    static,
    upgrades,
    users,
)

__all__ = [
    "agents",
    "audit",
    "auth",
    "dashboard",
    "drains",
    "fleet",
    "hosts",
    "migrations",
    "registries",
    "roles",
    "stacks",
    "static",
    "upgrades",
    "users",
]
