#!/usr/bin/env bash
# Balance Desk — the two commands of the README.
#
#   ./dev.sh app    set everything up (venv, Python packages) and start the app
#   ./dev.sh test   set everything up and run the whole test suite (ruff, mypy, pytest offscreen + Xvfb)
#   ./dev.sh setup  only set up the venv (used by packaging/build.sh)
#
# Setup is idempotent: the venv is made once and refreshed when pyproject.toml changes. As root on
# Debian, the system libraries Qt needs for a real X display (and Xvfb for the tests) are installed
# with apt-get when missing; otherwise the command that would install them is printed.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed-from

APT_GUI=(libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3)
APT_TEST=(xvfb xauth xdotool nginx libnginx-mod-stream haproxy postgresql)  # postgresql: tests/mgmt run on both engines

need_apt() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "dev.sh: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "dev.sh: missing system packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
  fi
}

setup() {
  # a C compiler builds the native data plane (core/proxy/engine/) at install; without one the balancer
  # still works, on its asyncio L4 shell
  command -v cc >/dev/null || { command -v dpkg-query >/dev/null && need_apt gcc; }
  if [ ! -x "$VENV/bin/python" ]; then
    echo "dev.sh: creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local want; want=$(cat pyproject.toml setup.py constraints.txt core/proxy/engine/*.[ch] | sha256sum | cut -c1-16)
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "dev.sh: installing Python packages into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
    echo "$want" > "$STAMP"
  fi
}

cmd=${1:-app}; shift || true
case "$cmd" in
  app)
    command -v dpkg-query >/dev/null && need_apt "${APT_GUI[@]}"
    setup
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${QT_QPA_PLATFORM:-}" != offscreen ]; then
      echo "dev.sh: no display here, so the desktop app cannot open; starting the embedded management"
      echo "        server with the demo data instead (Ctrl+C stops it). On a desktop, ./dev.sh app opens the window."
      exec "$VENV/bin/balancedesk" serve --demo "$@"
    fi
    exec "$VENV/bin/balancedesk" "$@"
    ;;
  test)
    command -v dpkg-query >/dev/null && need_apt "${APT_GUI[@]}" "${APT_TEST[@]}"
    setup
    echo "== ruff";  "$VENV/bin/ruff" check .
    echo "== mypy (strict)"
    # mypy cannot map the folders onto the balancedesk namespace the way setup.py does, so it checks
    # them through a symlinked view (build/typecheck/balancedesk/{core,gui,resources}).
    mkdir -p build/typecheck/balancedesk
    for d in core gui resources; do ln -sfn "../../../$d" "build/typecheck/balancedesk/$d"; done
    MYPYPATH=build/typecheck "$VENV/bin/mypy" --explicit-package-bases \
      $(find -L build/typecheck/balancedesk -name '*.py' -not -path '*/__pycache__/*')
    # The tests that need a real X server (mouse drag-and-drop) run first under Xvfb; the whole suite
    # runs last, offscreen, so its summary is the closing line.
    if command -v xvfb-run >/dev/null; then
      echo "== pytest (real X server under Xvfb: mouse drag-and-drop)"
      rc=0
      xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb \
        "$VENV/bin/python" -m pytest -q -m xcb "$@" || rc=$?
      [ "$rc" = 0 ] || [ "$rc" = 5 ] || exit "$rc"   # 5: no xcb test selected
    else
      echo "dev.sh: xvfb-run not found; the tests that need a real X server were not run" >&2
      exit 1
    fi
    if [ $# -eq 0 ]; then
      # the GUI's tests that use the management server, against a load-balancer installation: two servers
      # on one PostgreSQL behind a Balance Desk balancer, the first killed in the middle (tests/gui/installation.py)
      echo "== pytest (GUI against a load-balancer installation, one management server killed mid-test)"
      BALANCEDESK_TEST_INSTALLATION=1 QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -m pytest -q \
        -m "installation and not xcb" tests/gui
    fi
    echo "== pytest (offscreen)"
    QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -m pytest -q -m "not xcb" "$@"
    ;;
  setup)
    setup ;;
  *)
    echo "usage: ./dev.sh app|test|setup [args…]" >&2; exit 2 ;;
esac
