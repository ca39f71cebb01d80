#!/usr/bin/env bash
# Install (or upgrade) shopkeeper on a shop's box: a virtual environment under /opt/shopkeeper, the
# `shopkeeper` system user, /etc/shopkeeper/agent.toml (from the package's sample, never overwritten),
# /var/lib/shopkeeper with a warm numba cache, the hardened systemd units and the udev rules.
# Safe to run again: that is also how you upgrade. Run as root on the box, from a checkout:
#     sudo deploy/install.sh                      install or upgrade
#     sudo deploy/install.sh --uninstall          remove the venv, units and rules; keep config and data
#     sudo deploy/install.sh --uninstall --purge  also delete /etc/shopkeeper, /var/lib/shopkeeper, the user
# Options: --prefix DIR, --etc-dir DIR, --state-dir DIR, --source PATH (checkout, sdist or wheel),
#          --python PYTHON, --no-systemd (no user, units, udev: for tests and containers),
#          --extras LIST (comma-separated: gpio for drivers/beam_gpio, hub for the coop's hub machine).
set -euo pipefail
umask 022

PREFIX=/opt/shopkeeper
ETC_DIR=/etc/shopkeeper
STATE_DIR=/var/lib/shopkeeper
UNIT_DIR=/etc/systemd/system
UDEV_DIR=/etc/udev/rules.d
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
SERVICE_USER=shopkeeper
WITH_SYSTEMD=1
UNINSTALL=0
PURGE=0
EXTRAS=
MARKER=.shopkeeper-prefix

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
    case $1 in
        --prefix) PREFIX=$2; shift 2 ;;
        --etc-dir) ETC_DIR=$2; shift 2 ;;
        --state-dir) STATE_DIR=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --extras) EXTRAS=$2; shift 2 ;;
        --no-systemd) WITH_SYSTEMD=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install: unknown option $1" >&2; usage ;;
    esac
done
for d in "$PREFIX" "$ETC_DIR" "$STATE_DIR"; do
    case $d in /*) ;; *) die "$d: use an absolute path" ;; esac
    [ "$d" != / ] || die "refusing to use / as a directory"
done
# The agent alone needs no extra; a typo would otherwise only show as a pip warning and a driver problem later.
for extra in ${EXTRAS//,/ }; do
    case $extra in gpio|hub) ;; *) echo "install: unknown extra $extra (known: gpio, hub)" >&2; exit 2 ;; esac
done
VENV=$PREFIX/venv
CACHE_DIR=$STATE_DIR/numba-cache

IS_ROOT=0; [ "$(id -u)" -eq 0 ] && IS_ROOT=1
# The service user and file ownership only matter when systemd will run the agent as that user.
MANAGE_USER=0; [ "$WITH_SYSTEMD" -eq 1 ] && [ "$IS_ROOT" -eq 1 ] && MANAGE_USER=1
[ "$WITH_SYSTEMD" -eq 0 ] || [ "$IS_ROOT" -eq 1 ] || die "run as root (or add --no-systemd for a private install)"
SYSTEMD_RUNNING=0; [ -d /run/systemd/system ] && command -v systemctl >/dev/null && SYSTEMD_RUNNING=1

uninstall() {
    if [ "$WITH_SYSTEMD" -eq 1 ]; then
        if [ "$SYSTEMD_RUNNING" -eq 1 ]; then
            systemctl disable --now shopkeeper-agent.service shopkeeper-hub.service 2>/dev/null || true
        fi
        rm -f "$UNIT_DIR/shopkeeper-agent.service" "$UNIT_DIR/shopkeeper-hub.service" \
            "$UDEV_DIR/99-shopkeeper-serial.rules"
        [ "$SYSTEMD_RUNNING" -eq 0 ] || systemctl daemon-reload
    fi
    if [ -d "$PREFIX" ]; then
        # Only ever delete a directory this script made.
        [ -e "$PREFIX/$MARKER" ] || die "$PREFIX was not made by install.sh ($MARKER missing); remove it yourself"
        rm -rf "$PREFIX"
        say "removed $PREFIX"
    fi
    if [ "$PURGE" -eq 1 ]; then
        rm -rf "$ETC_DIR" "$STATE_DIR"
        say "purged $ETC_DIR and $STATE_DIR"
        if [ "$MANAGE_USER" -eq 1 ] && getent passwd "$SERVICE_USER" >/dev/null; then
            userdel "$SERVICE_USER" && say "removed user $SERVICE_USER"
        fi
    else
        say "kept $ETC_DIR and $STATE_DIR (add --purge to delete them)"
    fi
}

install_package() {
    if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        say "creating $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    touch "$PREFIX/$MARKER"
    local what=$SOURCE work=""
    if [ -d "$SOURCE" ]; then
        # Build from a clean copy: pip builds in the source tree, and a checkout may carry a .venv,
        # caches and build/ leftovers that do not belong in the package.
        work=$(mktemp -d)
        tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=build --exclude=dist --exclude='*.egg-info' \
            --exclude=__pycache__ --exclude=.numba-cache --exclude=demo-run --exclude=.pytest_cache \
            --exclude=.mypy_cache --exclude=.ruff_cache -cf - . | tar -C "$work" -xf -
        what=$work
    fi
    say "installing shopkeeper${EXTRAS:+[$EXTRAS]} from $SOURCE into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$what${EXTRAS:+[$EXTRAS]}"
    [ -z "$work" ] || rm -rf "$work"
    if [ -f "$SOURCE/docs/operations.md" ]; then
        mkdir -p "$PREFIX/docs"
        cp "$SOURCE/docs/operations.md" "$PREFIX/docs/operations.md"
    fi
}

ensure_user() {
    [ "$MANAGE_USER" -eq 1 ] || return 0
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "shopkeeper agent" "$SERVICE_USER"
        say "created system user $SERVICE_USER"
    fi
    local group
    for group in dialout gpio; do
        if getent group "$group" >/dev/null; then usermod -a -G "$group" "$SERVICE_USER"; fi
    done
}

write_config() {
    mkdir -p "$ETC_DIR"
    chmod 0750 "$ETC_DIR"
    [ "$MANAGE_USER" -eq 0 ] || chown root:"$SERVICE_USER" "$ETC_DIR"
    local config=$ETC_DIR/agent.toml
    if [ -e "$config" ]; then
        say "keeping $config"
    else
        local tmp
        tmp=$(mktemp "$ETC_DIR/.agent.toml.XXXXXX")
        "$VENV/bin/shopkeeper" sample-config >"$tmp"
        if [ "$STATE_DIR" != /var/lib/shopkeeper ]; then
            sed -i "s|^# data_dir = \"/var/lib/shopkeeper\"|data_dir = \"$STATE_DIR\"|" "$tmp"
        fi
        chmod 0640 "$tmp"
        [ "$MANAGE_USER" -eq 0 ] || chown root:"$SERVICE_USER" "$tmp"
        mv "$tmp" "$config"
        say "wrote $config from the sample: set coop, store, doors and drivers, then: shopkeeper check-config $config"
    fi
    "$VENV/bin/shopkeeper" check-config "$config" >/dev/null 2>&1 \
        || say "warning: $config does not validate yet; run: $VENV/bin/shopkeeper check-config $config"
}

warm_numba_cache() {
    mkdir -p "$CACHE_DIR"
    chmod 0750 "$STATE_DIR"
    # Compile every kernel the agent calls now, on this CPU, so the first start (and the first window
    # release under the watchdog) loads machine code from the cache instead of compiling for seconds.
    # -I: import the installed package, never a checkout that happens to be the current directory.
    NUMBA_CACHE_DIR=$CACHE_DIR "$VENV/bin/python" -I - <<'PY'
import numpy as np

from agent.kernels.footfall import count_footfall
from agent.privacy.sampler import discrete_gaussian, discrete_laplace

idx = np.zeros(4, dtype=np.int64)
count_footfall(idx, idx, idx + 1, idx, 1, 1)
discrete_laplace(2, 1, 10)
discrete_gaussian(2, 1, 10)
PY
    [ "$MANAGE_USER" -eq 0 ] || chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    say "numba cache warm in $CACHE_DIR"
}

install_units() {
    [ "$WITH_SYSTEMD" -eq 1 ] || return 0
    local unit changed=0
    mkdir -p "$UNIT_DIR" "$UDEV_DIR"
    for unit in shopkeeper-agent.service shopkeeper-hub.service; do
        # The units name the default paths; follow --prefix, --etc-dir and --state-dir.
        sed -e "s|/opt/shopkeeper|$PREFIX|g" -e "s|/etc/shopkeeper|$ETC_DIR|g" \
            -e "s|/var/lib/shopkeeper|$STATE_DIR|g" "$SOURCE/systemd/$unit" >"$UNIT_DIR/.$unit.new"
        if cmp -s "$UNIT_DIR/.$unit.new" "$UNIT_DIR/$unit"; then
            rm -f "$UNIT_DIR/.$unit.new"
        else
            mv "$UNIT_DIR/.$unit.new" "$UNIT_DIR/$unit"; changed=1
        fi
    done
    install -m 0644 "$SOURCE/deploy/udev/99-shopkeeper-serial.rules" "$UDEV_DIR/99-shopkeeper-serial.rules"
    if [ "$SYSTEMD_RUNNING" -eq 1 ]; then
        systemctl daemon-reload
        if command -v udevadm >/dev/null; then
            udevadm control --reload-rules && udevadm trigger --subsystem-match=tty || true
        fi
        # An upgrade replaced the code under a running agent: restart it (no-op when it is stopped).
        systemctl try-restart shopkeeper-agent.service
    fi
    say "units in $UNIT_DIR$([ "$changed" -eq 1 ] && echo ' (updated)'); enable with: systemctl enable --now shopkeeper-agent"
}

if [ "$UNINSTALL" -eq 1 ]; then
    uninstall
    exit 0
fi
mkdir -p "$PREFIX"
install_package
ensure_user
write_config
warm_numba_cache
install_units
say "done: $("$VENV/bin/shopkeeper" --version) in $VENV"
