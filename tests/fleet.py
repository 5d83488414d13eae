"""Real processes for integration tests: dockerd engines, a registry, helpers.

Every engine is a real ``dockerd`` (Debian ``docker.io``) with its own data root,
exec root, managed containerd, unix socket and cgroup parent, so one machine
simulates a fleet of hosts.  Nothing here ever touches the system daemon
(``/var/run/docker.sock``) or ``/var/lib/docker``.

Rules kept by everything in this module:

* Daemons run in their own session (``start_new_session=True``) with stdin from
  ``/dev/null`` and stdout/stderr to a log *file*, never to the test runner's
  pipes: a daemon holding CI's stdout open keeps CI hanging until its timeout.
* Everything started is stopped by the owner (fixtures), with an ``atexit``
  SIGKILL sweep and a parent-death signal as safety nets.
* Missing tools are a test *failure* pointing at ``scripts/test``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import io
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "BUSYBOX_IMAGE",
    "DMF_ROOT",
    "Engine",
    "Fleet",
    "FleetError",
    "Proc",
    "Registry",
    "cleanup",
    "docker_cli",
    "free_port",
    "import_busybox",
    "require_tools",
    "run_dir",
    "short_tmpdir",
    "spawn",
    "wait_for",
]

#: Root of every short path this module creates (unix sockets must stay < ~100 bytes).
DMF_ROOT = Path("/tmp/dmf")
#: Tag of the busybox image :func:`import_busybox` creates in an engine.
BUSYBOX_IMAGE = "local/busybox:1"

_INSTALL_HINT = "run scripts/test, which installs docker.io busybox-static docker-registry apache2-utils"
_PR_SET_PDEATHSIG = 1
_MNT_DETACH = 2

try:
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - every Linux has a libc
    _LIBC = None


class FleetError(RuntimeError):
    """A fleet process failed to start, answer or stop."""


class DockerCLIError(subprocess.CalledProcessError):
    """``CalledProcessError`` whose message carries the command's stderr."""

    def __str__(self) -> str:
        err = self.stderr if isinstance(self.stderr, str) else repr(self.stderr)
        out = self.stdout if isinstance(self.stdout, str) else repr(self.stdout)
        return f"{super().__str__()}\n--- stderr ---\n{err.strip()}\n--- stdout ---\n{out.strip()[-2000:]}"


# --------------------------------------------------------------------------- helpers


def require_tools(*tools: str) -> None:
    """Fail the test (an untested feature is not a pass) when not root or a tool is missing."""
    if os.geteuid() != 0:
        pytest.fail(f"integration tests need root (dockerd, cgroups, mounts): {_INSTALL_HINT}")
    missing = [t for t in tools if _which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {_INSTALL_HINT}")


def _which(tool: str) -> str | None:
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin")


def docker_cli() -> str:
    """The docker CLI: Debian's ``/usr/bin/docker`` (matches dockerd 20.10), else PATH's."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        pytest.fail(f"docker CLI not found: {_INSTALL_HINT}")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` s.

    ``message`` may be a callable, evaluated only on failure (e.g. to attach a log tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"{text} (after {timeout:.1f}s)")
        time.sleep(interval)


_RUN_DIR: Path | None = None
_RUN_LOCK = threading.Lock()


def run_dir() -> Path:
    """This process's short working dir ``/tmp/dmf/<run-id>`` (created once, 6 hex chars)."""
    global _RUN_DIR
    with _RUN_LOCK:
        if _RUN_DIR is None:
            DMF_ROOT.mkdir(parents=True, exist_ok=True)
            _reap_stale_runs()
            while True:
                candidate = DMF_ROOT / secrets.token_hex(3)
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                break
            (candidate / "owner").write_text(str(os.getpid()))
            _RUN_DIR = candidate
        return _RUN_DIR


def short_tmpdir(prefix: str = "t") -> Path:
    """A fresh short dir under ``/tmp/dmf`` (for unix sockets); the caller removes it."""
    DMF_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=DMF_ROOT))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _reap_stale_runs() -> None:
    """Remove run dirs of dead test processes (other live runs are left alone)."""
    for d in DMF_ROOT.iterdir():
        owner = d / "owner"
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            continue
        prefix = f"dmf-{d.name}-"
        parents = {c.name for h in _cgroup_hierarchies() for c in _iterdir(h) if c.name.startswith(prefix)}
        _kill_strays(f"{d}/", parents)
        _unmount_under(d)
        if not _mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ mounts and strays


def _iterdir(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found: list[str] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        mnt = fields[4].encode().decode("unicode_escape")
        if mnt == str(path) or mnt.startswith(prefix):
            found.append(mnt)
    return found


def _unmount_under(path: Path) -> None:
    """Lazily detach every mount under ``path`` (deepest first) so rmtree can't cross into one."""
    if _LIBC is None:
        return
    for _ in range(3):
        mounts = _mounts_under(path)
        if not mounts:
            return
        for mnt in sorted(mounts, key=len, reverse=True):
            _LIBC.umount2(mnt.encode(), _MNT_DETACH)


def _cgroup_hierarchies() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # pure cgroup v2
        return [base]
    return [h for h in _iterdir(base) if not h.is_symlink()]


def _cgroup_dirs(parent: str) -> list[Path]:
    rel = parent.strip("/")
    return [h / rel for h in _cgroup_hierarchies()] if rel else []


def _kill_strays(marker: str, cgroup_parents: Iterable[str]) -> None:
    """SIGKILL every process whose argv mentions ``marker`` or that sits in one of our cgroups.

    Targets only what we started: managed containerd and shims carry the engine dir in
    their argv, container processes live under the engine's own cgroup parent.
    """
    me = os.getpid()
    victims: set[int] = set()
    cgroup_dirs = [d for parent in cgroup_parents for d in _cgroup_dirs(parent)]
    for d in cgroup_dirs:
        if not d.is_dir():
            continue
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                victims.update(int(x) for x in procs.read_text().split())
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            victims.add(int(entry.name))
    victims.discard(me)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # Dead means gone or a zombie: orphans are reaped by pid 1, which may take its time.
    deadline = time.monotonic() + 5
    while any(_running(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Remove our (now empty) cgroup dirs, deepest first; they empty asynchronously.
    deadline = time.monotonic() + 3
    for d in cgroup_dirs:
        if not d.is_dir():
            continue
        subdirs = sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for sub in [*subdirs, d]:
            while True:
                try:
                    sub.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


# ------------------------------------------------------------------------------ Proc


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Proc:
    """A subprocess in its own session/process group, logging to a file."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: Sequence[str], log_path: Path) -> None:
        self.popen = popen
        self.argv = list(argv)
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"<Proc pid={self.pid} alive={self.alive} argv0={self.argv[0]!r}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status, or None if still running after ``timeout`` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process only (not its group)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; reap. Returns the exit status."""
        if self.alive:
            self._signal_group(signal.SIGTERM)
            self._signal_group(signal.SIGCONT)  # a paused process can't act on SIGTERM
            if self.wait(timeout) is None:
                self._signal_group(signal.SIGKILL)
        rc = self.wait(10)
        self._signal_group(signal.SIGKILL)  # sweep group members the leader left behind
        return rc

    def kill(self) -> int | None:
        """SIGKILL the whole process group and reap."""
        self._signal_group(signal.SIGKILL)
        return self.wait(10)

    def pause(self, group: bool = False) -> None:
        """SIGSTOP the process, or its whole group (an agent: the supervisor and the agent it runs)."""
        (self._signal_group if group else self.signal)(signal.SIGSTOP)

    def resume(self, group: bool = False) -> None:
        (self._signal_group if group else self.signal)(signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    kill_with_parent: bool = True,
) -> Proc:
    """Start ``argv`` in a new session, stdin=/dev/null, stdout+stderr appended to ``log_path``.

    ``env`` is the complete environment (default: inherit).  With ``kill_with_parent`` (and
    when called from the main thread) the child gets SIGKILL if the test process dies.
    """
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    preexec = None
    if kill_with_parent and threading.current_thread() is threading.main_thread():
        preexec = _set_pdeathsig
    with open(log, "ab") as fh:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            close_fds=True,
            preexec_fn=preexec,  # only a prctl() call
        )
    return Proc(popen, argv, log)


def _unix_http_get(path: str, sock_path: str, timeout: float) -> tuple[int, bytes] | None:
    """Minimal HTTP/1.0 GET over a unix socket; None on any failure or timeout."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return None
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    return status, body


# ---------------------------------------------------------------------------- Engine


class Engine:
    """One real dockerd = one simulated host.

    Layout under ``base_dir`` (keep it short): ``d.sock`` API socket, ``data/`` data root,
    ``x/`` exec root (containerd socket ``x/containerd/containerd.sock``), ``d.pid``,
    ``daemon.json``, ``key.json`` (own identity: distinct ``docker info`` ID),
    ``dockerd.log``, ``cli/`` a private DOCKER_CONFIG for :meth:`docker`.
    Containers go under the cgroup ``/<cgroup_parent>``.  No bridge network: run
    containers with ``--network none`` (or a user network).
    """

    def __init__(self, name: str, base_dir: Path, *, cgroup_parent: str | None = None) -> None:
        self.name = name
        self.dir = base_dir
        self.socket_path = str(base_dir / "d.sock")
        self.docker_host = f"unix://{self.socket_path}"
        self.data_root = base_dir / "data"
        self.exec_root = base_dir / "x"
        self.pidfile = base_dir / "d.pid"
        self.config_file = base_dir / "daemon.json"
        self.log_path = base_dir / "dockerd.log"
        self.docker_config = base_dir / "cli"
        self.cgroup_parent = cgroup_parent or f"dmf-{base_dir.parent.name}-{name}"
        self.proc: Proc | None = None
        self.frozen = False
        self.start_seconds: float | None = None
        if len(self.socket_path) > 90 or len(str(self.exec_root / "containerd/containerd.sock")) > 100:
            raise FleetError(f"engine dir {base_dir} too long for unix sockets")

    def __repr__(self) -> str:
        return f"<Engine {self.name} {self.docker_host} running={self.running}>"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive

    def argv(self) -> list[str]:
        return [
            _which("dockerd") or "dockerd",
            f"--config-file={self.config_file}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"-H=unix://{self.socket_path}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--log-level=warn",
            f"--cgroup-parent=/{self.cgroup_parent}",
            "--shutdown-timeout=5",
            f"--label=dockmesh.test.engine={self.name}",
        ]

    def start(self, timeout: float = 60) -> Engine:
        """Start dockerd and wait until ``GET /_ping`` answers. Idempotent."""
        if self.running:
            return self
        require_tools("dockerd", "containerd", "runc")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.docker_config.mkdir(exist_ok=True)
        # Flags and daemon.json may not both set one option; the trust key only exists here.
        self.config_file.write_text(json.dumps({"deprecated-key-path": str(self.dir / "key.json")}))
        # Leftovers of a killed dockerd: its socket and pidfile, and containerd's pidfile
        # (dockerd 20.10 takes a zombie containerd for a live one and waits for it forever).
        containerd_pidfile = self.exec_root / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            if not _running(int(containerd_pidfile.read_text().strip())):
                containerd_pidfile.unlink()
        for stale in (self.socket_path, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        t0 = time.monotonic()
        self.proc = spawn(self.argv(), log_path=self.log_path, env=_daemon_env())
        self.frozen = False
        proc = self.proc
        deadline = t0 + timeout
        while True:
            if not proc.alive:
                raise FleetError(
                    f"dockerd {self.name} exited with {proc.returncode} before answering /_ping; "
                    f"log tail ({self.log_path}):\n{proc.log_tail()}"
                )
            if self.ping(timeout=1.0):
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise FleetError(
                    f"dockerd {self.name} did not answer /_ping on {self.socket_path} within {timeout:.0f}s; "
                    f"log tail ({self.log_path}):\n{proc.log_tail()}"
                )
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop dockerd (SIGTERM, then SIGKILL) and sweep its containerd, shims and containers."""
        if self.proc is not None:
            if self.frozen:
                self.thaw()
            self.proc.stop(timeout)
        self.frozen = False
        _kill_strays(str(self.exec_root) + "/", [self.cgroup_parent])

    def restart(self, timeout: float = 60) -> Engine:
        self.stop()
        return self.start(timeout)

    def kill(self) -> None:
        """Simulate a host crash: SIGKILL dockerd, its containerd, shims and containers."""
        if self.proc is not None:
            self.proc.kill()
        self.frozen = False
        _kill_strays(str(self.exec_root) + "/", [self.cgroup_parent])

    def freeze(self) -> None:
        """SIGSTOP dockerd: its socket still accepts connections but nothing answers (hung host)."""
        if self.proc is None or not self.proc.alive:
            raise FleetError(f"engine {self.name} is not running")
        self.proc.pause()
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.resume()
        self.frozen = False

    def ping(self, timeout: float = 1.0) -> bool:
        """True when ``GET /_ping`` answers 200 within ``timeout`` seconds."""
        res = _unix_http_get("/_ping", self.socket_path, timeout)
        return res is not None and res[0] == 200

    def env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` pointed at this engine (DOCKER_HOST, private DOCKER_CONFIG), plus ``extra``."""
        env = {k: v for k, v in os.environ.items() if k not in _DOCKER_ENV_DROP}
        env["DOCKER_HOST"] = self.docker_host
        env["DOCKER_CONFIG"] = str(self.docker_config)
        env.update(extra)
        return env

    def docker(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine; ``env`` entries override :meth:`env`."""
        self.docker_config.mkdir(parents=True, exist_ok=True)
        cmd = [docker_cli(), *args]
        proc = subprocess.run(
            cmd,
            input=input,
            env=self.env(**dict(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise DockerCLIError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.docker("info", "--format", "{{json .}}").stdout)
        return data

    def image_exists(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0


_DOCKER_ENV_DROP = frozenset(
    {
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONFIG",
        "DOCKER_API_VERSION",
    }
)


def _daemon_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DOCKER_ENV_DROP}
    # dockerd/containerd/runc live in sbin dirs that a minimal PATH may lack.
    path = env.get("PATH", "")
    for extra in ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if extra not in path.split(":"):
            path = f"{path}:{extra}" if path else extra
    env["PATH"] = path
    return env


# --------------------------------------------------------------------------- busybox

_BUSYBOX_TAR: Path | None = None
_BUSYBOX_LOCK = threading.Lock()
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _busybox_tar() -> Path:
    """Build (once per process) a rootfs tar from Debian's static busybox."""
    global _BUSYBOX_TAR
    with _BUSYBOX_LOCK:
        if _BUSYBOX_TAR is not None and _BUSYBOX_TAR.exists():
            return _BUSYBOX_TAR
        busybox = "/usr/bin/busybox" if os.access("/usr/bin/busybox", os.X_OK) else None
        if busybox is None or not _is_static_elf(busybox):
            pytest.fail(f"static /usr/bin/busybox not found (package busybox-static): {_INSTALL_HINT}")
        applets = subprocess.run(
            [busybox, "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
        out = run_dir() / "busybox.tar"
        tmp = out.with_suffix(".tmp")
        mtime = 1_700_000_000  # fixed: same layer digest in every engine

        def add_dir(tf: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, mtime
            tf.addfile(ti)

        def add_file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, mtime
            tf.addfile(ti, io.BytesIO(data))

        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
            for d in ("bin", "etc", "root", "usr", "usr/bin", "var"):
                add_dir(tf, d, 0o700 if d == "root" else 0o755)
            add_dir(tf, "tmp", 0o1777)
            add_file(tf, "bin/busybox", Path(busybox).read_bytes(), 0o755)
            for applet in sorted(set(applets)):
                if applet == "busybox" or "/" in applet:
                    continue
                ti = tarfile.TarInfo(f"bin/{applet}")
                ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "busybox", 0o777, mtime
                tf.addfile(ti)
            ti = tarfile.TarInfo("usr/bin/env")
            ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, "/bin/busybox", 0o777, mtime
            tf.addfile(ti)
            add_file(tf, "etc/passwd", _PASSWD.encode())
            add_file(tf, "etc/group", _GROUP.encode())
        tmp.replace(out)
        _BUSYBOX_TAR = out
        return out


def _is_static_elf(path: str) -> bool:
    """True for an ELF executable without a PT_INTERP header (no dynamic loader needed)."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if len(hdr) < 52 or hdr[:4] != b"\x7fELF" or hdr[4] not in (1, 2):
                return False
            end = "<" if hdr[5] == 1 else ">"
            if hdr[4] == 2:
                phoff = struct.unpack_from(end + "Q", hdr, 0x20)[0]
                phentsize, phnum = struct.unpack_from(end + "HH", hdr, 0x36)
            else:
                phoff = struct.unpack_from(end + "I", hdr, 0x1C)[0]
                phentsize, phnum = struct.unpack_from(end + "HH", hdr, 0x2A)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        (p_type,) = struct.unpack_from(end + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def import_busybox(engine: Engine, tag: str = BUSYBOX_IMAGE) -> str:
    """Import the busybox rootfs as ``tag`` into ``engine`` (no-op when it exists). Returns ``tag``."""
    if engine.image_exists(tag):
        return tag
    tar = _busybox_tar()
    engine.docker(
        "import",
        "--change",
        'CMD ["sh"]',
        "--change",
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        str(tar),
        tag,
    )
    return tag


_CUSTOM_NETWORKS = "/networks?filters=" + urllib.parse.quote(json.dumps({"type": ["custom"]}))


def _listed(engine: Engine, path: str, field: str | None, cli: Sequence[str]) -> list[str]:
    """IDs (or names) from one Engine API GET; the docker CLI if the API does not answer.

    The GET takes a millisecond; each CLI run starts a Go binary (~0.1 s, more under load), and
    every test that uses the fleet is followed by a cleanup of every started engine."""
    res = _unix_http_get(path, engine.socket_path, timeout=30)
    if res is None or res[0] != 200:
        return engine.docker(*cli).stdout.split()
    data = json.loads(res[1])
    items = (data.get(field) if field else data) or []
    key = "Name" if field == "Volumes" else "Id"
    return [str(item[key]) for item in items]


def cleanup(engine: Engine) -> None:
    """Remove ALL containers, all non-default networks and all volumes of ``engine``."""
    if engine.frozen:
        engine.thaw()
    ids = _listed(engine, "/containers/json?all=1", None, ("ps", "-aq"))
    if ids:
        engine.docker("rm", "-f", "-v", *ids)
    nets = _listed(engine, _CUSTOM_NETWORKS, None, ("network", "ls", "-q", "--filter", "type=custom"))
    if nets:
        engine.docker("network", "rm", *nets)
    vols = _listed(engine, "/volumes", "Volumes", ("volume", "ls", "-q"))
    if vols:
        engine.docker("volume", "rm", "-f", *vols)


# -------------------------------------------------------------------------- Registry


class Registry:
    """Debian ``docker-registry`` on ``127.0.0.1:<port>``, with htpasswd basic auth unless ``auth=False``.

    Engines treat registries on 127.0.0.0/8 as insecure (plain HTTP) without flags.
    """

    def __init__(
        self, base_dir: Path, *, username: str = "dockmesh", password: str | None = None, auth: bool = True
    ) -> None:
        self.dir = base_dir
        self.auth = auth
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.port = 0
        self.addr = ""
        self.proc: Proc | None = None
        self.log_path = base_dir / "registry.log"
        self.config_path = base_dir / "config.yml"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def __repr__(self) -> str:
        return f"<Registry {self.addr or '-'} user={self.username}>"

    def start(self, timeout: float = 30) -> Registry:
        if self.proc is not None and self.proc.alive:
            return self
        require_tools("docker-registry", "htpasswd")
        self.dir.mkdir(parents=True, exist_ok=True)
        htpasswd = self.dir / "htpasswd"
        res = subprocess.run(
            ["htpasswd", "-Bbn", self.username, self.password],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        htpasswd.write_text(res.stdout.strip() + "\n")
        for _attempt in range(3):  # the free port may be taken in between: retry on another
            self.port = free_port()
            self.addr = f"127.0.0.1:{self.port}"
            self.config_path.write_text(
                "version: 0.1\n"
                "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                "storage:\n"
                f"  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
                "  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.addr}\n  secret: {secrets.token_hex(16)}\n"
                + (
                    f"auth:\n  htpasswd:\n    realm: dockmesh-test\n    path: {htpasswd}\n"
                    if self.auth
                    else ""
                )
            )
            self.proc = spawn(
                [_which("docker-registry") or "docker-registry", "serve", str(self.config_path)],
                log_path=self.log_path,
            )
            deadline = time.monotonic() + timeout
            while self.proc.alive and time.monotonic() < deadline:
                if self._v2_status() == (401 if self.auth else 200):
                    return self
                time.sleep(0.05)
            if self.proc.alive:
                self.proc.kill()
                raise FleetError(
                    f"registry on {self.addr} did not answer /v2/ within {timeout:.0f}s:\n"
                    f"{self.proc.log_tail()}"
                )
            if "address already in use" not in self.proc.log_text():
                break
        assert self.proc is not None
        raise FleetError(f"registry exited with {self.proc.returncode}:\n{self.proc.log_tail()}")

    def _v2_status(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as r:
                status: int = r.status
                return status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None:
            self.proc.stop(timeout)


# ----------------------------------------------------------------------------- Fleet


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    # KeyboardInterrupt (unlike SystemExit) makes pytest stop and run fixture teardown.
    raise KeyboardInterrupt(f"signal {signum}")


class Fleet:
    """Lazily started engines ``e0..eN`` and one registry, all under :func:`run_dir`."""

    def __init__(self, root: Path | None = None) -> None:
        require_tools("dockerd", "containerd", "runc", docker_cli())
        self.root = root or run_dir()
        self._engines: dict[int, Engine] = {}
        self._registry: Registry | None = None
        self._open_registry: Registry | None = None
        self._lock = threading.RLock()
        atexit.register(self._emergency_kill)
        # A SIGTERM'd test run (CI timeout, Ctrl-C from a wrapper) should still tear down.
        self._sigterm_hooked = False
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
            self._sigterm_hooked = True

    def __repr__(self) -> str:
        return f"<Fleet {self.root} engines={sorted(self._engines)}>"

    @property
    def engines(self) -> list[Engine]:
        """Engines created so far (running or not), by index."""
        return [self._engines[i] for i in sorted(self._engines)]

    def engine(self, i: int) -> Engine:
        """Engine ``i``, started (or restarted if a test stopped it) with busybox imported."""
        with self._lock:
            eng = self._engines.get(i)
            if eng is None:
                eng = Engine(f"e{i}", self.root / f"e{i}")
                self._engines[i] = eng
            if eng.frozen:
                eng.thaw()
            if not eng.running:
                eng.start()
                import_busybox(eng)
            return eng

    def registry(self) -> Registry:
        with self._lock:
            if self._registry is None:
                self._registry = Registry(self.root / "reg")
            return self._registry.start()

    def open_registry(self) -> Registry:
        """A second registry, without authentication: pulls through paths that carry no credentials."""
        with self._lock:
            if self._open_registry is None:
                self._open_registry = Registry(self.root / "oreg", auth=False)
            return self._open_registry.start()

    def reset(self) -> None:
        """After a test: thaw, restart stopped engines, remove containers/networks/volumes."""
        with self._lock:
            for i, eng in sorted(self._engines.items()):
                if eng.frozen:
                    eng.thaw()
                if eng.proc is None:
                    continue
                if not eng.running:
                    self.engine(i)
                cleanup(eng)

    def close(self) -> None:
        with self._lock:
            errors: list[str] = []

            def stop(eng: Engine) -> None:
                try:
                    if eng.running and not eng.frozen:
                        # dockerd's shutdown waits out every container's stop timeout (10 s
                        # for a shell ignoring SIGTERM): remove them first.
                        with contextlib.suppress(subprocess.SubprocessError, OSError):
                            ids = eng.docker("ps", "-q", timeout=10).stdout.split()
                            if ids:
                                eng.docker("rm", "-f", *ids, timeout=30)
                    eng.stop()
                except Exception as e:  # keep stopping the others
                    errors.append(f"{eng.name}: {e}")

            # dockerd takes ~1 s to shut down: stop the engines in parallel.
            threads = [threading.Thread(target=stop, args=(eng,)) for eng in self.engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for registry in (self._registry, self._open_registry):
                if registry is not None:
                    registry.stop()
            _kill_strays(str(self.root) + "/", [e.cgroup_parent for e in self._engines.values()])
            _unmount_under(self.root)
            if not _mounts_under(self.root):
                shutil.rmtree(self.root, ignore_errors=True)
            atexit.unregister(self._emergency_kill)
            if self._sigterm_hooked and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._sigterm_hooked = False
            if errors:
                raise FleetError("stopping engines failed: " + "; ".join(errors))

    def _emergency_kill(self) -> None:
        for eng in self._engines.values():
            if eng.proc is not None:
                eng.proc.resume()
                eng.proc.kill()
        for registry in (self._registry, self._open_registry):
            if registry is not None and registry.proc is not None:
                registry.proc.kill()
        _kill_strays(str(self.root) + "/", [e.cgroup_parent for e in self._engines.values()])
