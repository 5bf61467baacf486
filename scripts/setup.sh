#!/usr/bin/env bash
# Installs what tcplab needs on Debian/Ubuntu, and nothing twice: system packages that
# are missing, then a virtualenv (.venv) with the package and its pinned dependencies.
# Idempotent and quick when everything is there (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(iproute2 iptables kmod libnetfilter-queue-dev gcc python3 python3-venv python3-dev
      python3-pip ca-certificates)
VENV=.venv
STAMP=$VENV/.tcplab-installed

[ "$(id -u)" = 0 ] || { echo "setup: run as root (sudo $0)" >&2; exit 3; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own python3 (>= 3.11 on Debian 12 / Ubuntu 24.04), not whatever is first on PATH.
PY=/usr/bin/python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: tcplab needs Python >= 3.11, $PY is $($PY -V)" >&2; exit 3; }

want="$(sha256sum pyproject.toml | cut -d' ' -f1) $($PY -V 2>&1)"
if [ ! -x $VENV/bin/python ] || [ "$(cat $STAMP 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV"
  rm -rf $VENV
  "$PY" -m venv $VENV
  $VENV/bin/pip install -q --upgrade pip
  $VENV/bin/pip install -q -e '.[test]'
  echo "$want" > $STAMP
fi

# tracefs gives exact TCP state changes; without it the lab falls back to inet_diag.
if [ ! -d /sys/kernel/tracing/instances ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "setup: tracefs not mountable (states will come from inet_diag)"
fi
modprobe nfnetlink_queue 2>/dev/null || true
echo "setup: ready ($($VENV/bin/tcplab --version))"
