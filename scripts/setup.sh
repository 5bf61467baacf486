#!/usr/bin/env bash
# Installs what tcplab needs on Debian/Ubuntu, and nothing twice: system packages that
# are missing, then a virtualenv (.venv) with the package and its dependencies at the
# exact versions of requirements.lock (pyproject.toml gives ranges; the lock is what the
# lab is tested with: regenerate it with pip-compile, as its header says).
# Idempotent and quick when everything is there (a stamp records what was installed).
#   scripts/setup.sh          what the lab needs (./lab demo, ./lab run, the Vagrantfile)
#   scripts/setup.sh --test   and what the tests need besides (./lab test): Debian's
#                             vagrant, for `vagrant validate` of the Vagrantfile,
#                             tshark, which reads the lab's pcaps back in the tests,
#                             chromium, which renders the --svg/--html pictures in them, and
#                             tmux, in which a test presses the keys of `run --step`
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(iproute2 iptables kmod libnetfilter-queue-dev gcc python3 python3-venv python3-dev
      python3-pip ca-certificates)
TEST_PKGS=(vagrant tshark chromium tmux)
VENV=.venv
STAMP=$VENV/.tcplab-installed
TEST_STAMP=$VENV/.tcplab-test-installed  # the [test] extra, installed by --test only

test_too=0
case "${1:-}" in
  --test) test_too=1 ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || { echo "setup: run as root (sudo $0)" >&2; exit 3; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() test_missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ $test_too = 1 ]; then
  # A vagrant from elsewhere (HashiCorp's own package or binary) will do as well.
  for p in "${TEST_PKGS[@]}"; do installed "$p" || command -v "$p" >/dev/null || test_missing+=("$p"); done
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#test_missing[@]} -gt 0 ]; then
  # Not every release packages vagrant (nor is every machine online); the lab works
  # without it, and the test that needs it says so, and fails under CI.
  echo "setup: installing ${test_missing[*]} (for the tests)"
  { [ ${#missing[@]} -gt 0 ] || apt-get update -qq; } \
    && apt-get install -y -qq --no-install-recommends "${test_missing[@]}" >/dev/null \
    || echo "setup: could not install ${test_missing[*]}; tests/unit/test_vagrant_and_workflow.py will say so" >&2
fi

# Debian's own python3 (>= 3.11 on Debian 12 / Ubuntu 24.04), not whatever is first on PATH.
PY=/usr/bin/python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: tcplab needs Python >= 3.11, $PY is $($PY -V)" >&2; exit 3; }

want="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1) $($PY -V 2>&1)"
if [ ! -x $VENV/bin/python ] || [ "$(cat $STAMP 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV"
  rm -rf $VENV
  "$PY" -m venv $VENV
  $VENV/bin/pip install -q --upgrade pip
  $VENV/bin/pip install -q -c requirements.lock -e .
  echo "$want" > $STAMP
fi
if [ $test_too = 1 ] && [ "$(cat $TEST_STAMP 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the test dependencies into $VENV"
  $VENV/bin/pip install -q -c requirements.lock -e '.[test]'
  echo "$want" > $TEST_STAMP
fi

# tracefs gives exact TCP state changes; without it the lab falls back to inet_diag.
if [ ! -d /sys/kernel/tracing/instances ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "setup: tracefs not mountable (states will come from inet_diag)"
fi
modprobe nfnetlink_queue 2>/dev/null || true
echo "setup: ready ($($VENV/bin/tcplab --version))"
