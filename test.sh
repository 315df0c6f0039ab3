#!/usr/bin/env bash
# Install everything (the tap with its test and lint extras in .venv, Meltano in
# .venv-meltano) and run the checks CI runs: ruff (lint and format), mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,lint]'
python3 -m venv .venv-meltano
.venv-meltano/bin/python -m pip install -q --disable-pip-version-check "meltano==4.4.1"
export MELTANO_BIN="$PWD/.venv-meltano/bin/meltano"
. .venv/bin/activate
ruff check .
ruff format --check .
mypy
# Byte-compiled once, as an installed wheel is: the suite starts the tap hundreds of
# times, and where PYTHONDONTWRITEBYTECODE is set each start compiled it again.
python -m compileall -q tap_callcenter emulator harness > /dev/null
python -m pytest -q "$@"
