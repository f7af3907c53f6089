#!/usr/bin/env bash
# Runs Microsoft's Python SDKs and the Azure CLI against the jit-emulator binary.
#
# Creates (or reuses) a virtual environment with the pinned clients from
# requirements.txt, then runs the foreign_clients_python test with
# JIT_FOREIGN_CLIENTS_VENV pointing at it. Needs python3 with the venv module and access
# to PyPI the first time.
#
#   tests/emulator/foreign-clients/run.sh            # venv in ~/.cache/jit/foreign-clients-venv
#   JIT_FOREIGN_CLIENTS_VENV=/some/dir tests/emulator/foreign-clients/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repository="$(cd "$here/../../.." && pwd)"
venv="${JIT_FOREIGN_CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/jit/foreign-clients-venv}"
stamp="$venv/.requirements.txt"

if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
    echo "foreign-clients: installing the pinned clients into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

cd "$repository"
JIT_FOREIGN_CLIENTS_VENV="$venv" cargo test --workspace --test foreign_clients_python -- --ignored --nocapture
