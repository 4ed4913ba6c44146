#!/usr/bin/env bash
# Create ./.venv (if missing) and install dynrep with its dependencies into it. Idempotent.
# torch is pinned to the CPU build used in development and CI: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev,notebooks,docs,tensorboard,wandb,safetensors,submitit]"
