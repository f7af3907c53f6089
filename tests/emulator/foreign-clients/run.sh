#!/usr/bin/env bash
# Runs Microsoft's Python SDKs and the Azure CLI against the jit-emulator binary, twice:
# the versions pinned in requirements.txt and the newest releases on PyPI.
#
# Makes (or reuses) the virtual environments with make-venvs.sh, then runs the
# foreign_clients_python tests with JIT_FOREIGN_CLIENTS_VENV and
# JIT_FOREIGN_CLIENTS_LATEST pointing at them. Needs python3 with the venv module and
# access to PyPI the first time (and once a day for the newest clients).
#
#   tests/emulator/foreign-clients/run.sh     # venvs under ~/.cache/jit/
#   JIT_FOREIGN_CLIENTS_VENV=/a JIT_FOREIGN_CLIENTS_LATEST=/b tests/emulator/foreign-clients/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repository="$(cd "$here/../../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/jit"
export JIT_FOREIGN_CLIENTS_VENV="${JIT_FOREIGN_CLIENTS_VENV:-$cache/foreign-clients-venv}"
export JIT_FOREIGN_CLIENTS_LATEST="${JIT_FOREIGN_CLIENTS_LATEST:-$cache/foreign-clients-latest}"

"$here/make-venvs.sh" "$JIT_FOREIGN_CLIENTS_VENV" "$JIT_FOREIGN_CLIENTS_LATEST"
cd "$repository"
cargo test -p jit-emulator --test foreign_clients_python -- --ignored --nocapture
