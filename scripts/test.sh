#!/usr/bin/env bash
# Install (idempotent) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check dynrep tests benchmarks examples scripts
.venv/bin/python -m pytest tests "$@"
