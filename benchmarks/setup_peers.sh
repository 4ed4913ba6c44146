#!/usr/bin/env bash
# Create the benchmark-only venv for benchmarks/peers.py (default ./.venv-peers, or $PEERS_VENV) holding
# dynrep (editable) and pythae. Peers are never dynrep dependencies. Idempotent.
# torch is pinned to dynrep's CPU build first; pythae goes in with --no-deps (its torch requirement would
# otherwise be free to pull another build) and its runtime dependencies are listed here by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PEERS_VENV:-.venv-peers}
PYTHON=${PYTHON:-python3.11}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e .
"$VENV/bin/python" -m pip install --quiet --no-deps "pythae==0.1.2"
# pythae's runtime imports (its setup.py lists more, e.g. dataclasses, imageio, cloudpickle; these are the ones
# `import pythae.models` needs).
"$VENV/bin/python" -m pip install --quiet "pydantic>=2" "scikit-learn" "scipy" "tqdm" "typing_extensions" \
    "cloudpickle" "imageio"
"$VENV/bin/python" -c "import torch, pythae.models; print('peers venv ready: torch', torch.__version__)"
