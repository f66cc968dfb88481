#!/usr/bin/env bash
# Installs the Debian packages vlaforge's real parts need (idempotent; skips what is present).
#   libosmesa6: MuJoCo CPU rendering (MUJOCO_GL=osmesa)   chromium: report rendering check
#   g++: torch.compile (train.compile) builds C++ kernels on CPU
set -euo pipefail
need=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
