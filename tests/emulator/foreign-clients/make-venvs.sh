#!/usr/bin/env bash
# Makes (or refreshes) the two sets of clients the foreign_clients_python test runs:
#
#   make-venvs.sh PINNED_VENV LATEST_DIR
#
# PINNED_VENV gets the versions pinned in requirements.txt (remade when that file
# changes). LATEST_DIR gets the newest releases on PyPI, in two venvs because the Azure
# CLI pins older SDKs than the newest: LATEST_DIR/sdk (requirements-latest.txt) and
# LATEST_DIR/cli (azure-cli); they are upgraded at most once a day. Needs python3 with
# the venv module, and PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pinned=${1:?usage: make-venvs.sh PINNED_VENV LATEST_DIR}
latest=${2:?usage: make-venvs.sh PINNED_VENV LATEST_DIR}

install() { # venv, pip arguments...
    local venv=$1; shift
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

if ! cmp -s "$here/requirements.txt" "$pinned/.requirements.txt" 2>/dev/null; then
    echo "foreign clients: installing the pinned clients into $pinned" >&2
    rm -rf "$pinned"
    install "$pinned" -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$pinned/.requirements.txt"
fi

today=$(date -u +%F)
if [ "$(cat "$latest/.upgraded-on" 2>/dev/null)" != "$today" ] \
    || ! cmp -s "$here/requirements-latest.txt" "$latest/.requirements-latest.txt" 2>/dev/null; then
    echo "foreign clients: upgrading the newest clients in $latest" >&2
    mkdir -p "$latest"
    install "$latest/sdk" --upgrade -r "$here/requirements-latest.txt"
    install "$latest/cli" --upgrade azure-cli
    cp "$here/requirements-latest.txt" "$latest/.requirements-latest.txt"
    echo "$today" > "$latest/.upgraded-on"
fi
