#!/usr/bin/env bash
# One-command demo: install, start the bundled emulator (Thulium, Conpeek, ECSS), run
# `meltano run tap-callcenter target-duckdb` twice (full, then incremental from
# Meltano's state), show what landed in output/demo.duckdb, stop the emulator.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[emulator]'
python3 -m venv .venv-meltano
.venv-meltano/bin/python -m pip install -q --disable-pip-version-check "meltano==4.4.1"
exec .venv/bin/python scripts/demo.py --meltano .venv-meltano/bin/meltano "$@"
