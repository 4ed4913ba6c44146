#!/usr/bin/env bash
# Download and verify one MPI3D variant into $DYNREP_DATA (default ~/.cache/dynrep). Installs nothing.
# Usage: scripts/download_mpi3d.sh [toy|realistic|real] [--force] [--url URL] [--dest DIR] [--quiet]
# The variant defaults to "real" (the default of dynrep's MPI3D environment); each file is ~12 GB.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"
[ -x "$python" ] || python=python3
variant=real
case "${1:-}" in
    toy|realistic|real) variant="$1"; shift ;;
esac
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # run from any directory; relative --dest/--url stay relative to it
exec "$python" -m dynrep.cli download "mpi3d_$variant" "$@"
