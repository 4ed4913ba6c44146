#!/usr/bin/env bash
# Install (idempotent) and run the demo: train the rotation learner on GridWorld, write GIFs, print metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/dynrep demo "$@"
