#!/usr/bin/env bash
# Write the LeRobot v3.0 test datasets under tests/robotics/data/lerobot_v30/ with the real
# `lerobot-dataset` package (scripts/make_lerobot_fixtures.py), in a virtual environment of its own
# (.cache/lerobot-venv): the package needs Python >= 3.12 and imports torch and torchvision without
# declaring them, and torchvision does not load against vlaforge's CPU torch. The output is small and
# committed; run this again only to regenerate it (`make lerobot-fixtures`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/lerobot-venv
OUT=${1:-tests/robotics/data/lerobot_v30}  # make_lerobot_fixtures.sh DIR --repeat 20: a larger one for the bench
PINS=(lerobot-dataset==0.5.0 torch==2.10.0 torchvision==0.25.0)

find_python() {  # the first Python >= 3.12: $LEROBOT_PYTHON, python3.12/3.13 on PATH, or a pyenv version
  local candidates=("${LEROBOT_PYTHON:-}" python3.13 python3.12)
  if command -v pyenv >/dev/null; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]' | sort -rV); do
      candidates+=("$(pyenv root)/versions/$v/bin/python")
    done
  fi
  for py in "${candidates[@]}"; do
    [ -n "$py" ] && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$py"; return; }
  done
  echo "make_lerobot_fixtures: lerobot-dataset 0.5.0 needs Python >= 3.12; set LEROBOT_PYTHON" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import ledataset, torchvision' 2>/dev/null; then
  rm -rf "$VENV"
  "$(find_python)" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "${PINS[@]}"
fi
"$VENV/bin/python" -c 'import ledataset, torch, torchvision; print("lerobot-dataset", __import__("importlib.metadata").metadata.version("lerobot-dataset"), "torch", torch.__version__, "torchvision", torchvision.__version__)'
mkdir -p "$OUT"
"$VENV/bin/python" scripts/make_lerobot_fixtures.py --out "$OUT" "${@:2}"
