#!/usr/bin/env bash
# Podman on this kind of machine (see docs/reference/environment.md): source it, or run it once to
# prepare. Installs podman/buildah/runc/debootstrap if missing, writes a containers.conf with the runc
# runtime and lowered ulimits, and exports CONTAINERS_CONF. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup-system.sh" podman buildah runc debootstrap uidmap
CONF_DIR="$ROOT/.tools/podman"
mkdir -p "$CONF_DIR"
cat > "$CONF_DIR/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$CONF_DIR/containers.conf"
