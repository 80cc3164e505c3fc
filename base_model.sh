#!/usr/bin/env bash
# The main job: the base PAR search on WikiText-2 (configs/base_model.flags).
#
#   ./base_model.sh [extra flags for scripts/train.py]
#
# Builds data/wikitext2_bsz32_seqlen32 with ./create_tfrecords.sh when it is missing, then
# trains into runs/base_model (override with --model_dir=...). Running it again resumes.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f data/wikitext2_bsz32_seqlen32/meta.json ]; then
  ./create_tfrecords.sh
fi
exec "${PYTHON:-python3}" scripts/train.py --flagfile=configs/base_model.flags "$@"
