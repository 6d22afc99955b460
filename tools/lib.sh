# Shared by tools/run, tools/test and tools/bench: a virtualenv at .venv with
# fastgate built into it, and Debian packages installed when missing.
# Sourced, not executed.

FASTGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$FASTGATE_ROOT/.venv"
PY="$VENV/bin/python"

# ensure_venv [extras]: create .venv if needed and (re)build fastgate into it.
# Rebuilds only when the build inputs changed.
ensure_venv() {
    local extras="${1:-}"
    if [ ! -x "$PY" ]; then
        echo "fastgate: creating virtualenv in $VENV" >&2
        python3 -m venv "$VENV"
    fi
    local spec="$FASTGATE_ROOT"
    [ -n "$extras" ] && spec="$FASTGATE_ROOT[$extras]"
    # Rebuild only when the build inputs changed since the last build: the
    # compile of the Cython modules takes a while and the install is editable.
    local stamp_file="$VENV/.fastgate-build-$(echo "$extras" | tr -c 'a-z0-9\n' '_')"
    local stamp
    stamp=$(cd "$FASTGATE_ROOT" && cat pyproject.toml setup.py fastgate/_core/*.pyx \
            fastgate/_core/*.pxd fastgate/_core/*_py.py 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
        && "$PY" -c "import fastgate._core" 2>/dev/null; then
        return 0
    fi
    # No build isolation: the build reuses the venv's Cython and setuptools.
    "$PY" -m pip install -q --disable-pip-version-check "setuptools>=77" "Cython>=3.0,<4" wheel
    "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation -e "$spec"
    echo "$stamp" > "$stamp_file"
}

# ensure_apt CMD PACKAGE [CMD PACKAGE ...]: apt-get install the packages whose
# command is missing ('apt-get update' once first).
ensure_apt() {
    local missing=()
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "fastgate: installing ${missing[*]} with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
