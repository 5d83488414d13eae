# Sourced by scripts/serve and scripts/test: make (once) and enter the project's own virtual
# environment, so installing never touches the system Python. Debian and Ubuntu mark theirs
# "externally managed" (PEP 668) and pip refuses to install into it.
# Settings: DOCKMESH_VENV (default ./.venv), DOCKMESH_PYTHON (default python3 on the PATH).

venv_die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

venv_enter() {
    local venv=${DOCKMESH_VENV:-.venv} python=${DOCKMESH_PYTHON:-python3}
    command -v "$python" >/dev/null ||
        venv_die "no $python on the PATH: install Python 3.11 or newer (Debian: apt-get install python3)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        venv_die "dockmesh needs Python 3.11 or newer; $python is $("$python" -V 2>&1). Set DOCKMESH_PYTHON."
    # A venv made by another interpreter (or half made) is made again.
    local want have=""
    want=$("$python" -c 'import sys; print(sys.base_prefix, sys.version)')
    if [ -x "$venv/bin/python" ]; then
        have=$("$venv/bin/python" -c 'import sys; print(sys.base_prefix, sys.version)' 2>/dev/null || true)
    fi
    if [ "$have" != "$want" ] || [ ! -x "$venv/bin/pip" ]; then
        rm -rf "$venv"
        if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            venv_install_debian_venv "$python"
            "$python" -m venv "$venv" || venv_die "could not create a virtual environment in $venv"
        fi
    fi
    export VIRTUAL_ENV
    VIRTUAL_ENV=$(cd "$venv" && pwd)
    export PATH="$VIRTUAL_ENV/bin:$PATH"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
}

# Debian splits venv/ensurepip out of its python3 into python3-venv (python3.X-venv).
venv_install_debian_venv() {
    local python=$1 pkg
    pkg="python$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
    command -v apt-get >/dev/null ||
        venv_die "$python cannot create virtual environments: install its venv module"
    [ "$(id -u)" -eq 0 ] ||
        venv_die "$python cannot create virtual environments: run 'sudo apt-get install $pkg', then again"
    printf '%s: installing %s (Python virtual environments)\n' "$(basename "$0")" "$pkg" >&2
    local log
    log=$(mktemp)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        venv_die "apt-get install $pkg failed (log: $log)"
    fi
    rm -f "$log"
}
