#!/usr/bin/env bash
# Download and verify one MPI3D variant into $DYNREP_DATA (default ~/.cache/dynrep); see scripts/download.sh.
# Usage: scripts/download_mpi3d.sh [toy|realistic|real] [--force] [--url URL] [--dest DIR] [--quiet]
# The variant defaults to "real" (the default of dynrep's MPI3D environment); each file is ~12 GB.
variant=real
case "${1:-}" in
    toy|realistic|real) variant="$1"; shift ;;
esac
exec "$(dirname "$0")/download.sh" "mpi3d_$variant" "$@"
