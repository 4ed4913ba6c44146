#!/usr/bin/env bash
# Install (idempotent), lint, run the test suite (arguments go to its pytest), execute every tutorial notebook
# with a real Jupyter kernel at small settings, and build the documentation strictly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check dynrep tests benchmarks examples scripts
.venv/bin/python -m pytest tests "$@"
# The notebooks run on executed copies in build/notebooks (the stored ones carry no outputs; the docs render
# these copies). Two at a time, one torch thread each.
rm -rf build/notebooks && mkdir -p build/notebooks && cp notebooks/*.ipynb build/notebooks/
DYNREP_TUTORIAL_STEPS=${DYNREP_TUTORIAL_STEPS:-20} OMP_NUM_THREADS=1 \
    .venv/bin/python -m pytest --nbmake --overwrite -n 2 -p no:cacheprovider build/notebooks
# The documentation site, built strictly (broken links, missing pages fail) with those executed notebooks.
bash scripts/docs.sh build
