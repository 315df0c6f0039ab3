#!/usr/bin/env bash
# One-command demo: install, start the bundled emulator, sync it, show what landed.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e .
exec python scripts/demo.py "$@"
