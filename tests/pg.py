"""A real PostgreSQL 15 server for tests: Debian's binaries, an unprivileged throwaway cluster.

initdb refuses to run as root, so the cluster belongs to an unprivileged user (the package's `postgres`)
in a short temp dir under /tmp/dmf; the server listens on 127.0.0.1 on a free port, its unix socket in
that dir, trust authentication (the dir and the loopback port are the test's own). Each test that wants
an empty database asks `create_database` for one.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from tests.fleet import FleetError, Proc, free_port, short_tmpdir, spawn, wait_for


def _pg_bin() -> Path:
    """Debian's newest installed server binaries (15 on bookworm), or DOCKMESH_PG_BIN."""
    if os.environ.get("DOCKMESH_PG_BIN"):
        return Path(os.environ["DOCKMESH_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
PG_USER = "postgres"  # the OS user owning the cluster (created by Debian's postgresql-common)
SUPERUSER = "dockmesh"


class Postgres:
    def __init__(self) -> None:
        for tool in ("initdb", "postgres", "pg_ctl", "psql"):
            if not (PG_BIN / tool).is_file():
                raise FleetError(
                    f"PostgreSQL is not installed ({PG_BIN / tool} missing): apt-get install postgresql"
                )
        try:
            owner = pwd.getpwnam(PG_USER)
        except KeyError:
            raise FleetError(
                f"no OS user {PG_USER!r} to own the test cluster (apt-get install postgresql)"
            ) from None
        self.dir = short_tmpdir("pg")
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.log_path = self.dir / "postgres.log"
        self.proc: Proc | None = None
        self._as_user = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"]
        init_log = self.dir / "initdb.log"
        with open(init_log, "wb") as fh:
            code = subprocess.call(
                [*self._as_user, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                 "--auth=trust", "-E", "UTF8", "--no-sync"],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, cwd=self.dir,
            )  # fmt: skip
        if code != 0:
            raise FleetError(f"initdb failed ({code}):\n{init_log.read_text()[-2000:]}")

    def start(self) -> Postgres:
        self.proc = spawn(
            [
                *self._as_user,
                str(PG_BIN / "postgres"),
                "-D", str(self.data),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.dir}",
                "-c", "max_connections=300",
                # A throwaway cluster: durability buys nothing here and costs seconds per test run.
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "logging_collector=off",
            ],
            log_path=self.log_path,
            cwd=self.dir,
        )  # fmt: skip
        wait_for(
            lambda: self._psql("postgres", "SELECT 1", check=False) == 0,
            timeout=60,
            message=lambda: f"postgres did not start:\n{self.log_tail()}",
        )
        return self

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

    def _psql(self, database: str, sql: str, *, check: bool = True) -> int:
        with open(self.dir / "psql.log", "ab") as fh:
            code = subprocess.call(
                [str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", SUPERUSER,
                 "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if check and code != 0:
            raise FleetError(f"psql {sql!r} failed ({code}); see {self.dir / 'psql.log'}")
        return code

    def _client(self, tool: str, url: str, *args: str) -> str:
        """Run psql or pg_dump against the database of ``url`` and return its output."""
        return subprocess.run(
            [str(PG_BIN / tool), "-h", str(self.dir), "-p", str(self.port), "-U", SUPERUSER,
             "-d", url.rsplit("/", 1)[1], *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip

    def query(self, url: str, sql: str) -> list[str]:
        """The first column of each row (unaligned text)."""
        return self._client("psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql).splitlines()

    def dump(self, url: str) -> str:
        """The whole database as SQL text (schema and rows)."""
        return self._client("pg_dump", url, "--inserts")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database (its URL): tests and servers never see each other's rows."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self._psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", check=False)

    def stop(self) -> None:
        """Immediate shutdown through pg_ctl (by the postmaster's pid file), then the process itself."""
        if self.proc is not None:
            with open(self.dir / "pg_ctl.log", "ab") as fh:
                subprocess.call(
                    [*self._as_user, str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"],
                    stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, cwd=self.dir,
                )  # fmt: skip
            self.proc.stop(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
