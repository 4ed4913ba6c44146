#!/usr/bin/env bash
# Download and verify dsprites into $DYNREP_DATA (default ~/.cache/dynrep); see scripts/download.sh.
exec "$(dirname "$0")/download.sh" dsprites "$@"
