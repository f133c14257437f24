#!/usr/bin/env bash
# Installs redis-server (Debian package `redis-server`) for `npm run bench -- --compare bullmq`.
# Not needed for `npm test`. Does nothing when redis-server is already on PATH. The bench
# starts its own server on an ephemeral port on 127.0.0.1, so the package's system service
# is stopped and disabled here if the package started one.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "redis-server already installed: $(redis-server --version)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends redis-server
# Debian starts redis-server as a service on 127.0.0.1:6379; the bench does not use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl disable --now redis-server || true
fi
echo "installed: $(redis-server --version)"
