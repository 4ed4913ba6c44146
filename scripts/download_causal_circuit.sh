#!/usr/bin/env bash
# Verify and install CausalCircuit (train-0..9.npz, val.npz, test.npz) into $DYNREP_DATA/causal_circuit; see
# scripts/download.sh. No direct file URL is known: download the files from Qualcomm's page
# https://www.qualcomm.com/developer/software/causal-circuit-dataset, then pass their directory with --url DIR.
exec "$(dirname "$0")/download.sh" causal_circuit "$@"
