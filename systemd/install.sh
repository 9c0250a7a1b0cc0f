#!/usr/bin/env bash
# Install edge-agent as a systemd service on a gateway (Raspberry Pi OS Bookworm or Debian).
# Idempotent: running it again upgrades the venv and leaves existing config and state alone.
#   sudo ./systemd/install.sh                  # from a checkout
#   sudo CONFIG=my-floor.toml ./systemd/install.sh
set -euo pipefail

SOURCE=${SOURCE:-$(cd "$(dirname "$0")/.." && pwd)}
PREFIX=${PREFIX:-/opt/edge-agent}
CONFIG=${CONFIG:-}
USER_NAME=edge-agent
UNIT=/etc/systemd/system/edge-agent.service

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh must run as root: sudo $0" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "python3 (3.11+) is required: apt-get install python3 python3-venv" >&2; exit 1; }
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is required (Raspberry Pi OS Bookworm has it)" >&2; exit 1; }

# 1. The service user, in the device groups it needs (created if the OS lacks them).
for g in i2c gpio bluetooth dialout; do
  getent group "$g" >/dev/null || groupadd --system "$g"
done
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/edge-agent --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
usermod -a -G i2c,gpio,bluetooth,dialout "$USER_NAME"

# 2. The code, in its own venv under $PREFIX (the 'pi' extra brings lgpio on ARM only).
mkdir -p "$PREFIX"
rm -rf "$PREFIX/src.new"
mkdir -p "$PREFIX/src.new"
tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude='__pycache__' -cf - . | tar -C "$PREFIX/src.new" -xf -
rm -rf "$PREFIX/src" && mv "$PREFIX/src.new" "$PREFIX/src"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$PREFIX/src[pi]"

# 3. Configuration (never overwritten) and the unit.
install -d -m 0750 -o root -g "$USER_NAME" /etc/edge-agent
if [ ! -e /etc/edge-agent/gateway.toml ]; then
  install -m 0640 -o root -g "$USER_NAME" "${CONFIG:-$PREFIX/src/examples/floor-3.toml}" /etc/edge-agent/gateway.toml
  echo "installed a starting config at /etc/edge-agent/gateway.toml: edit it for this floor"
fi
"$PREFIX/venv/bin/edge-agent" config check /etc/edge-agent/gateway.toml

# 4. The gateway's own key pair (signs its audit heads and, on request, command results), made once
#    by the service user in its state directory: the private half readable by that user only.
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" /var/lib/edge-agent
runuser -u "$USER_NAME" -- sh -c "umask 077; '$PREFIX/venv/bin/edge-agent' keys generate --gateway \
  --config /etc/edge-agent/gateway.toml --state-dir /var/lib/edge-agent"
install -m 0644 "$PREFIX/src/systemd/edge-agent.service" "$UNIT"
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable edge-agent.service
  systemctl restart edge-agent.service
  systemctl --no-pager --lines=5 status edge-agent.service || true
else
  echo "systemd is not running here: the unit is installed at $UNIT; enable it on the gateway"
fi
