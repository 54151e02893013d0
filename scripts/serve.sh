#!/usr/bin/env bash
# Quick start: install Portside and run it on its embedded default (SQLite + local disk).
# Extra arguments go to `portside serve` (see docs/configuration.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/portside serve "$@"
