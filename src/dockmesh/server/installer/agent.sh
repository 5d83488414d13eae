#!/usr/bin/env bash
# dockmesh agent installer, generated for one enrolment token by the dockmesh server.
# Usage: curl -fsSL --insecure --pinnedpubkey "sha256//<pin>" "<server>/install/agent.sh?token=<token>" \
#          | sudo bash -s -- [--as-root] [--skip-docker]
# (--pinnedpubkey makes curl refuse any server key but this server's, before it reads a byte of the script.)
# Everything runs from main(), called on the last line: a truncated download runs nothing.
set -euo pipefail

DOCKMESH_SERVER_URL=@@SERVER_URL@@
DOCKMESH_ENROLL_URL=@@ENROLL_URL@@
DOCKMESH_TOKEN=@@TOKEN@@
DOCKMESH_CA_SHA256=@@CA_SHA256@@
DOCKMESH_ARTIFACTS=@@ARTIFACTS@@
DOCKMESH_HTTPS_PIN=@@HTTPS_PIN@@

say() { printf 'dockmesh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

artifact_sha256() {
  local arch=$1 entry
  for entry in $DOCKMESH_ARTIFACTS; do
    if [ "${entry%%=*}" = "$arch" ]; then printf '%s' "${entry#*=}"; return 0; fi
  done
  return 1
}

# Every download after the script itself goes over the channel the one-liner verified: the same key pin,
# so the artifact (whose SHA-256 came in this script) cannot be swapped either.
fetch() {
  local url=$1 out=$2
  if [ -n "$DOCKMESH_HTTPS_PIN" ]; then
    case "$url" in
      https://*) ;;
      *) die "refusing to download $url without TLS: this installer is pinned to the server's key" ;;
    esac
    curl -fsSL --insecure --pinnedpubkey "$DOCKMESH_HTTPS_PIN" "$url" -o "$out"
  else
    curl -fsSL "$url" -o "$out"
  fi
}

# The artifact carries wheels for CPython 3.9-3.13. Print the first such interpreter on the PATH that the
# agent's user can run, as its real path (not a wrapper: a pyenv shim works only in its owner's shell);
# the agent is started with it (PEX_PYTHON). Arguments: how to run a command as that user (none: root).
find_python() {
  local name dir found IFS=:
  for name in python3 python3.13 python3.12 python3.11 python3.10 python3.9; do
    for dir in $PATH; do
      [ -n "$dir" ] && [ -x "$dir/$name" ] && [ ! -d "$dir/$name" ] || continue
      found=$(cd / && ${1+"$@"} "$dir/$name" -c 'import sys
if (3, 9) <= sys.version_info[:2] <= (3, 13): print(sys.executable)' 2>/dev/null) || continue
      case "$found" in /*) printf '%s' "$found"; return 0 ;; esac
    done
  done
  return 1
}

install_docker() {
  say "Docker not found; installing it from the distribution's packages"
  if command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
  elif command -v dnf >/dev/null; then dnf install -y docker
  elif command -v yum >/dev/null; then yum install -y docker
  elif command -v apk >/dev/null; then apk add docker
  else die "cannot install Docker here: install it yourself, or re-run with --skip-docker"
  fi
  if [ -d /run/systemd/system ]; then systemctl enable --now docker || true; fi
}

main() {
  local as_root=0 skip_docker=0 arg
  for arg in "$@"; do
    case "$arg" in
      --as-root) as_root=1 ;;
      --skip-docker) skip_docker=1 ;;
      *) die "unknown flag '$arg' (known: --as-root, --skip-docker)" ;;
    esac
  done

  [ "$(uname -s)" = "Linux" ] || die "the installer supports Linux only; on macOS build dockmesh-agent from source and set DOCKMESH_ENROLL_URL and DOCKMESH_TOKEN"
  [ "$(id -u)" -eq 0 ] || die "run as root: curl … | sudo bash"

  local prefix=${DOCKMESH_INSTALL_PREFIX:-}
  case "$prefix" in *[!A-Za-z0-9/._-]*) die "DOCKMESH_INSTALL_PREFIX may only hold letters, digits and / . _ -" ;; esac

  local arch expected
  arch=$(uname -m)
  case "$arch" in amd64) arch=x86_64 ;; arm64) arch=aarch64 ;; esac
  expected=$(artifact_sha256 "$arch") || die "this server has no agent build for $arch"

  local python probe_as=()
  # The dedicated user does not exist yet: an interpreter `nobody` can run, it can run too.
  if [ "$as_root" -eq 0 ]; then probe_as=(runuser -u nobody --); fi
  python=$(find_python ${probe_as[@]+"${probe_as[@]}"}) ||
    die "the agent needs Python 3.9 to 3.13 and this host has $(python3 -V 2>/dev/null || echo "no python3"): install one (apt-get install python3, dnf install python3 or dnf install python3.11) and run this again"
  case "$python" in *[!A-Za-z0-9/._+-]*) die "the Python path $python has characters this installer does not quote" ;; esac
  command -v curl >/dev/null || die "curl is required"
  if [ "$skip_docker" -eq 0 ] && ! command -v dockerd >/dev/null && ! command -v docker >/dev/null; then
    install_docker
  fi

  local lib="$prefix/usr/local/lib/dockmesh-agent" bin_dir="$prefix/usr/local/bin"
  local state="$prefix/var/lib/dockmesh-agent" env_file="$prefix/etc/dockmesh-agent.env"
  local log_dir="$prefix/var/log" bin tmp
  mkdir -p "$lib" "$bin_dir" "$state" "$(dirname "$env_file")" "$log_dir"
  bin="$lib/dockmesh-agent.pex"

  say "downloading the agent for $arch from $DOCKMESH_SERVER_URL"
  tmp=$(mktemp "$lib/.download.XXXXXX")
  fetch "$DOCKMESH_SERVER_URL/install/agent/$arch" "$tmp" || { rm -f "$tmp"; die "download failed"; }
  if ! printf '%s  %s\n' "$expected" "$tmp" | sha256sum -c --status -; then
    rm -f "$tmp"
    die "the downloaded agent does not match its SHA-256 ($expected); nothing was installed"
  fi
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
  ln -sf "$bin" "$bin_dir/dockmesh-agent"

  local user=root run_as=()
  if [ "$as_root" -eq 0 ]; then
    user=dockmesh
    if ! id dockmesh >/dev/null 2>&1; then
      useradd --system --home-dir "$state" --shell /usr/sbin/nologin dockmesh
    fi
    if getent group docker >/dev/null; then usermod -aG docker dockmesh; fi
    # Every later run of the agent binary uses its user: pex unpacks into PEX_ROOT on first use.
    run_as=(runuser -u "$user" --)
  fi

  # The token goes in a 0600 file the agent deletes after enrolling; it never enters the unit or env file.
  umask 077
  printf '%s\n' "$DOCKMESH_TOKEN" > "$state/token"
  {
    printf 'DOCKMESH_ENROLL_URL="%s"\n' "$DOCKMESH_ENROLL_URL"
    printf 'DOCKMESH_CA_SHA256="%s"\n' "$DOCKMESH_CA_SHA256"
    printf 'DOCKMESH_STATE_DIR="%s"\n' "$state"
    printf 'PEX_ROOT="%s"\n' "$state/.pex"
    printf 'PEX_PYTHON="%s"\n' "$python"
    if [ -n "${DOCKER_HOST:-}" ]; then printf 'DOCKER_HOST="%s"\n' "$DOCKER_HOST"; fi
  } > "$env_file"
  chmod 0600 "$env_file"
  chmod 0700 "$state"
  chown -R "$user" "$state"

  if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/dockmesh-agent.service <<UNIT
[Unit]
Description=dockmesh agent
After=network-online.target docker.service
Wants=network-online.target

[Service]
User=$user
EnvironmentFile=$env_file
# `run` is the supervisor: it starts the selected build as its child, and rolls a failed upgrade back.
# KillMode=mixed: a stop signals the supervisor alone, which stops its child in order (it forwards
# SIGTERM); whatever is left at the timeout is killed with the whole group.
ExecStart=$bin_dir/dockmesh-agent run
KillMode=mixed
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=$state
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable dockmesh-agent >/dev/null 2>&1
    systemctl restart dockmesh-agent
  else
    # The pid recorded is the supervisor's (`run`); it stops its child on SIGTERM and takes the child with it
    # if it dies (PDEATHSIG). Upgraded builds live in $state/builds, the one place the agent may write.
    say "systemd not found; starting the agent in the background (log: $log_dir/dockmesh-agent.log)"
    if [ -f "$state/agent.pid" ] && kill -0 "$(cat "$state/agent.pid")" 2>/dev/null; then
      kill "$(cat "$state/agent.pid")" 2>/dev/null || true
      sleep 1
    fi
    (
      set -a
      # shellcheck disable=SC1090
      . "$env_file"
      set +a
      exec setsid "${run_as[@]}" "$bin" run
    ) >>"$log_dir/dockmesh-agent.log" 2>&1 </dev/null &
    echo $! > "$state/agent.pid"
  fi

  say "waiting for the server to report this host online"
  if (set -a; . "$env_file"; set +a; "${run_as[@]}" "$bin" status --wait 90 >/dev/null); then
    say "success: this host is online in dockmesh"
  else
    say "the agent did not come online; diagnosis:"
    (set -a; . "$env_file"; set +a; "${run_as[@]}" "$bin" doctor) >&2 || true
    exit 1
  fi
}

main "$@"
