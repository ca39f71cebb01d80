#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run the demo, the tests and the benchmarks:
# Mosquitto (Debian package) when it is missing, a virtual environment, and this package in it.
# Safe to run again; `make` calls it whenever pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The deploy tests: systemd-analyze (unit checks), openssl (the coop PKI), sqlite3 (backups in the docs).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
# The hub's tests: a real PostgreSQL (started by the tests on a free loopback port) and headless Chromium.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: need Debian packages ${need_apt[*]}; run as root or: sudo apt-get install ${need_apt[*]}" >&2
        exit 1
    fi
    echo "bootstrap: installing ${need_apt[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# The broker is started by the demo and the tests on a loopback port; the packaged system service
# is not needed for that (deploy/mosquitto has configs for a real box).

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test,bench,hub,gpio]"
touch "$VENV/.installed"
echo "bootstrap: ready ($("$VENV/bin/python" --version), $("$VENV/bin/shopkeeper" --version))"
