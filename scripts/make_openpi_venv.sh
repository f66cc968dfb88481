#!/usr/bin/env bash
# The virtual environment in which the tests run openpi's own client (`openpi_client.WebsocketClientPolicy`)
# against `vlaforge serve --protocol openpi`: openpi-client pins numpy < 2 and needs typing_extensions
# without declaring it, so it cannot share vlaforge's environment. Idempotent; prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OPENPI_VENV:-.cache/openpi-venv}
PYTHON=${PYTHON:-python3}
PINS=(openpi-client==0.1.2 typing_extensions==4.16.0 numpy==1.26.4 websockets==17.4 msgpack==1.2.4)
if ! "$VENV/bin/python" -c 'import openpi_client.websocket_client_policy' 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" >&2
fi
echo "$VENV/bin/python"
