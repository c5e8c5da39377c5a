#!/usr/bin/env bash
# Build Balance Desk's installers for admins on Linux:
#   dist/balancedesk/                 PyInstaller one-folder app (GUI + CLI in one executable)
#   dist/balancedesk_<ver>_amd64.deb  Debian/Ubuntu package: /opt/balancedesk, /usr/bin/balancedesk,
#                                     a menu entry and an icon; `dpkg -i` to install, `dpkg -r` to remove
#   dist/balancedesk-<ver>-linux-x86_64.tar.gz
# Usage: packaging/build.sh   (run from anywhere; builds in build/pkg-venv, a venv of its own)
set -euo pipefail
cd "$(dirname "$0")/.."
# A regular (non-editable) install in its own venv: PyInstaller cannot follow the editable finder that
# maps core/ and gui/ onto the balancedesk namespace.
VENV=build/pkg-venv
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -c constraints.txt . "pyinstaller>=6"
VER=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('balancedesk'))")

echo "== PyInstaller"
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/balancedesk.spec

echo "== smoke test of the frozen app"
QT_QPA_PLATFORM=offscreen dist/balancedesk/balancedesk --help >/dev/null
dist/balancedesk/balancedesk export --help >/dev/null
# the native engine (core/proxy/engine/) must be inside: --data-plane native refuses to start without it
smoke=$(mktemp -d)
cat > "$smoke/group.json" <<'JSON'
{"connectorID": "smoke", "owner": "admin", "label": "smoke", "authUser": [],
 "connectorGroup": {"connectionTimeout": 2, "retryDelay": 5, "members": [{"memberID": "m1", "sequence": 1, "weight": 1}]},
 "endpoints": {"m1": "127.0.0.1:9"}}
JSON
dist/balancedesk/balancedesk balance --config "$smoke/group.json" --listen 127.0.0.1:0 --mode tcp \
  --data-plane native > "$smoke/out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "balancing" "$smoke/out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
grep -q "balancing" "$smoke/out" || { cat "$smoke/out"; echo "build.sh: the frozen balancer did not start on the native engine" >&2; kill $pid 2>/dev/null; exit 1; }
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$smoke"

echo "== .deb"
root=build/deb/balancedesk_${VER}_amd64
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
         "$root/usr/share/icons/hicolor/scalable/apps"
cp -a dist/balancedesk "$root/opt/balancedesk"
ln -s /opt/balancedesk/balancedesk "$root/usr/bin/balancedesk"
cp packaging/balancedesk.desktop "$root/usr/share/applications/"
icon=$(ls resources/icons/balancedesk.svg resources/*.svg 2>/dev/null | head -1 || true)
[ -n "$icon" ] && cp "$icon" "$root/usr/share/icons/hicolor/scalable/apps/balancedesk.svg"
size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: balancedesk
Version: $VER
Architecture: amd64
Maintainer: Balance Desk team <balancedesk@localhost>
Installed-Size: $size
Depends: libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0, libxkbcommon-x11-0, libegl1, libfontconfig1
Recommends: nginx, haproxy
Section: net
Priority: optional
Description: Desktop administration for load-balanced connector groups
 Edit connector groups, serve the HDP-compatible management API, run an L4/L7
 balancer with the group's failover and weights, watch it live, and export
 groups to nginx or HAProxy.
CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$root" "dist/balancedesk_${VER}_amd64.deb" >/dev/null
tar -C dist -czf "dist/balancedesk-${VER}-linux-x86_64.tar.gz" balancedesk
ls -lh dist/*.deb dist/*.tar.gz
