#!/usr/bin/env bash
# Builds the local stand-in for a registry base image: Debian bookworm (debootstrap minbase) with
# Python 3.11, imported into podman as $BASE_TAG. Used where no registry is reachable; a cluster
# build uses the Dockerfiles' production BASE_IMAGE defaults instead. Skips work already done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/podman-env.sh"
BASE_TAG="${BASE_TAG:-localhost/vlaforge-base:bookworm}"
if podman image exists "$BASE_TAG"; then
  echo "base image $BASE_TAG present"
  exit 0
fi
ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/vlaforge-rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$ROOTFS" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import \
  --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_TAG"
echo "built base image $BASE_TAG"
