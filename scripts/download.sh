#!/usr/bin/env bash
# Download and verify a dataset into $DYNREP_DATA (default ~/.cache/dynrep). Installs nothing.
# Usage: scripts/download.sh NAME [--force] [--url URL (mirror or file://)] [--dest DIR] [--quiet]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # run from any directory; relative --dest/--url stay relative to it
exec "$python" -m dynrep.cli download "$@"
