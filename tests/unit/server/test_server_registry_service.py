"""The registry credential service on the real store (both engines) and the real key file: secrets sealed,
never listed, never in an error or an audit row; selection for a host."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dockmesh.server.directory import HostRef
from dockmesh.server.services.deploys import deploy_params
from dockmesh.server.services.errors import Forbidden, Invalid, NotFound, TooLarge, Unavailable
from dockmesh.server.services.registries import RegistryService, view
from dockmesh.server.services.stacks import StackService, check_auth_fits
from dockmesh.server.vault import KEY_FILE, Vault
from dockmesh.store import Database
from dockmesh.store.agents import AgentStore
from dockmesh.store.audit import AuditStore
from dockmesh.store.registries import CredentialStore
from dockmesh.store.schema import registry_credentials
from dockmesh.store.stacks import StackStore
from dockmesh.store.users import UserRecord

ADMIN_ID, SECRET = 1, "s3cret-Pa55-do-not-leak"


def admin() -> UserRecord:
    return UserRecord(ADMIN_ID, "admin", "x", True)


def service(db: Database, data_dir: Path) -> RegistryService:
    return RegistryService(CredentialStore(db), Vault.load_or_create(data_dir), lambda: 7.0)


PROD = HostRef("h1", "web-1", ("prod",), None)
DEV = HostRef("h2", "dev-1", ("dev",), None)


async def test_add_list_update_remove_never_show_the_secret(db: Database, tmp_path: Path) -> None:
    svc = service(db, tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    record = await svc.add(admin(), "https://127.0.0.1:5000/", "dm", SECRET, "prod and not eu")
    shown = view(record)
    assert shown["url"] == "127.0.0.1:5000"
    assert shown["scope"] == "prod and not eu"
    assert SECRET not in json.dumps(shown)
    assert "secret" not in shown
    assert "password" not in shown
    assert [r.id for r in await svc.list(admin())] == [record.id]
    async with db.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(sa.select(registry_credentials))]
        audit = [r.detail for r in await AuditStore(db).recent()]
    assert SECRET not in repr(rows)
    assert SECRET not in repr(audit)

    changed = await svc.update(admin(), record.id, {"password": "n3w-" + SECRET, "scope": ""})
    assert changed.scope == "all"
    assert changed.secret != record.secret
    assert (await svc.for_image(DEV, "127.0.0.1:5000/dm/x:1")) == {
        "username": "dm",
        "password": "n3w-" + SECRET,
        "serveraddress": "127.0.0.1:5000",
    }
    assert SECRET not in repr([e.detail for e in await AuditStore(db).recent()])
    await svc.delete(admin(), record.id)
    with pytest.raises(NotFound):
        await svc.get(admin(), record.id)
    with pytest.raises(NotFound):
        await svc.delete(admin(), record.id)
    actions = [e.action for e in await AuditStore(db).recent()]
    assert actions == ["registry.remove", "registry.update", "registry.add"]


async def test_selection_by_scope_and_registry(db: Database, tmp_path: Path) -> None:
    svc = service(db, tmp_path)
    await svc.add(admin(), "127.0.0.1:5000", "prod-user", "prod-pw", "prod")
    await svc.add(admin(), "ghcr.io/acme", "gh", "gh-pw")
    image = "127.0.0.1:5000/dm/secret:1"
    assert (await svc.for_image(PROD, image) or {})["password"] == "prod-pw"
    assert await svc.for_image(DEV, image) is None
    both = await svc.for_images(PROD, [image, "ghcr.io/acme/web:1", "busybox"])
    assert {k: v["username"] for k, v in both.items()} == {"127.0.0.1:5000": "prod-user", "ghcr.io": "gh"}
    assert await svc.for_images(DEV, [image, "busybox"]) == {}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"url": "not a host"}, "invalid_url"),
        ({"username": ""}, "invalid_username"),
        ({"username": "a\nb"}, "invalid_username"),
        ({"password": ""}, "invalid_password"),
        ({"password": SECRET + "\n"}, "invalid_password"),
        ({"password": SECRET * 500}, "invalid_password"),
        ({"scope": "prod and ("}, "invalid_scope"),
    ],
)
async def test_bad_input_is_refused_without_echoing_the_secret(
    db: Database, tmp_path: Path, fields: dict[str, str], code: str
) -> None:
    svc = service(db, tmp_path)
    args = {"url": "ghcr.io", "username": "u", "password": SECRET, "scope": ""} | fields
    with pytest.raises(Invalid) as info:
        await svc.add(admin(), **args)
    assert info.value.code == code
    assert SECRET not in str(info.value.message)
    assert await svc.list(admin()) == []


async def test_scope_errors_say_where(db: Database, tmp_path: Path) -> None:
    with pytest.raises(Invalid) as info:
        await service(db, tmp_path).add(admin(), "ghcr.io", "u", "p", "prod and BAD")
    assert info.value.details["position"] == 9
    assert "position 9" in info.value.message


async def test_only_an_administrator_manages_credentials(db: Database, tmp_path: Path) -> None:
    svc, dev = service(db, tmp_path), UserRecord(2, "dev", "x", False)
    with pytest.raises(Forbidden):
        await svc.add(dev, "ghcr.io", "u", "p")
    with pytest.raises(Forbidden):
        await svc.list(dev)


async def test_a_replaced_key_refuses_clearly(db: Database, tmp_path: Path) -> None:
    await service(db, tmp_path).add(admin(), "ghcr.io", "u", SECRET)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(Unavailable) as info:
        await service(db, other).for_image(PROD, "ghcr.io/x/y")
    assert info.value.code == "credential_unreadable"
    assert SECRET not in info.value.message


class Online:
    closed = False


class Launches:
    """A Deployer stand-in that keeps what a deploy would send the host."""

    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []

    def launch(self, deployment: Any, link: Any, params: dict[str, Any]) -> None:
        self.params.append(params)


PRIVATE_STACK = """\
services:
  api:
    image: ${REG}/dm/api:1
  web:
    image: ghcr.io/acme/web:2
  db:
    image: busybox
"""


async def test_a_deploy_sends_the_host_its_own_credentials_and_stores_none(
    db: Database, tmp_path: Path
) -> None:
    svc = service(db, tmp_path)
    await svc.add(admin(), "127.0.0.1:5000", "prod-user", "prod-pw", "prod")
    await svc.add(admin(), "ghcr.io", "gh", "gh-pw", "not prod")
    store, launches = StackStore(db), Launches()
    hosts = [HostRef("h1", "web-1", ("prod",), Online()), HostRef("h2", "dev-1", ("dev",), Online())]  # type: ignore[arg-type]

    class Directory:
        async def all(self) -> list[HostRef]:
            return hosts

    stacks = StackService(
        store,
        AgentStore(db),
        Directory(),
        launches,
        AuditStore(db),
        lambda: 5.0,
        credentials=svc.for_images,  # type: ignore[arg-type]
    )
    await stacks.save(admin(), "shop", PRIVATE_STACK, "REG=127.0.0.1:5000\n")
    await stacks.deploy(admin(), "shop", "h1")
    await store.settle((await store.unsettled("h1"))[0].id, "done", services=[], error=None, now=6.0)
    await stacks.deploy(admin(), "shop", "h2")
    prod, dev = launches.params
    assert prod["auth"] == {
        "127.0.0.1:5000": {"username": "prod-user", "password": "prod-pw", "serveraddress": "127.0.0.1:5000"}
    }
    assert dev["auth"] == {"ghcr.io": {"username": "gh", "password": "gh-pw", "serveraddress": "ghcr.io"}}
    async with db.read() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        rows = [r for t in tables for r in await conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
    assert "prod-pw" not in repr(rows)
    assert "gh-pw" not in repr(rows)


def test_a_deploy_whose_credentials_the_agent_or_the_link_would_refuse_is_refused_first() -> None:
    params = deploy_params("d", "shop", "services: {}\n", "", allow_privileged=False)
    one = {"username": "u", "password": SECRET, "serveraddress": "r"}
    check_auth_fits(params, {f"r{i}.io": one for i in range(16)})
    with pytest.raises(Invalid) as many:
        check_auth_fits(params, {f"r{i}.io": one for i in range(17)})
    assert many.value.code == "too_many_registries"
    big = deploy_params("d", "shop", "x" * ((1 << 20) - 2000), "", allow_privileged=False)
    with pytest.raises(TooLarge) as large:
        check_auth_fits(big, {"r.io": {**one, "password": "p" * 4096}})
    assert SECRET not in large.value.message
