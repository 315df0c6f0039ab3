#!/usr/bin/env bash
# Install everything into .venv and run the checks CI runs: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test,lint]'
ruff check .
mypy
python -m pytest -q "$@"
