#!/usr/bin/env bash
# Gets WikiText-2 and builds the default dataset: vocabulary 12000, batch 32, seq_len 32.
#
#   ./create_tfrecords.sh                      # download (original URL, then a mirror)
#   ./create_tfrecords.sh --source PATH        # wikitext-2-v1.zip or a directory of splits
#   ./create_tfrecords.sh --vocab_size=8000    # other flags go to scripts/build_data.py
#
# Writes data/wikitext-2/{train,valid,test}.txt and data/wikitext2_bsz32_seqlen32/. Running
# it again reuses both when they are up to date.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "$0"
  cat <<'USAGE'
Options:
  --source PATH    local wikitext-2-v1.zip (MD5 checked) or directory with the split files
  --data_dir DIR   where data goes (default: data)
  --url URL        download from URL instead of the built-in list (repeatable)
  --md5 HEX        expected MD5 of the downloaded or given zip
  -h, --help       this help
Any other --flag=value is passed to scripts/build_data.py (see its --help).
USAGE
}

data_dir=data
fetch_args=()
build_args=()
batch_size=32
seq_len=32
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --source | --data_dir | --url | --md5)
      (($# >= 2)) || { echo "error: $1 needs a value" >&2; exit 2; }
      set -- "$1=$2" "${@:3}"; continue ;;
    --source=*) fetch_args+=("$1") ;;
    --url=* | --md5=*) fetch_args+=("$1") ;;
    --data_dir=*) data_dir=${1#*=} ;;
    --batch_size=*) batch_size=${1#*=}; build_args+=("$1") ;;
    --seq_len=*) seq_len=${1#*=}; build_args+=("$1") ;;
    --*) build_args+=("$1") ;;
    *) echo "error: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ${a[@]+"${a[@]}"}: an empty array under set -u, also in the bash 3 of macOS.
"$PYTHON" scripts/fetch_wikitext2.py --dest="$data_dir/wikitext-2" ${fetch_args[@]+"${fetch_args[@]}"}
# Vocabulary 12000, batch 32, seq_len 32 and one shard are build_data.py's defaults; they are
# not passed, so that a given --sp_model (whose size decides) is not contradicted.
"$PYTHON" scripts/build_data.py \
  --input="$data_dir/wikitext-2" \
  --output_dir="$data_dir/wikitext2_bsz${batch_size}_seqlen${seq_len}" \
  --reuse_existing ${build_args[@]+"${build_args[@]}"}
