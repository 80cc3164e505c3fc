#!/usr/bin/env bash
# Gets a corpus and builds its dataset; by default WikiText-2 with a 12,000-piece
# SentencePiece vocabulary, batch 32, seq_len 32 (what base_model.sh trains on).
#
#   ./create_tfrecords.sh                          # download (original URL, then a mirror)
#   ./create_tfrecords.sh --source PATH            # the zip, or a directory of splits
#   ./create_tfrecords.sh --vocab_size=8000        # other flags go to scripts/build_data.py
#   ./create_tfrecords.sh --dataset=wikitext-103   # words, batch 60, seq_len 150
#   ./create_tfrecords.sh --dataset=enwik8         # bytes, batch 22, seq_len 512 (text8 too)
#
# Writes data/<dataset>/{train,valid,test}.txt and data/<name>_bsz<B>_seqlen<T>/ (for
# WikiText-2 with SentencePiece: data/wikitext2_bsz32_seqlen32/). Running it again reuses
# both when they are up to date.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  cat <<'USAGE'
Options:
  --dataset NAME   wikitext-2 (default), wikitext-103, enwik8 or text8
  --source PATH    local copy: the published zip (MD5 checked where one is published), enwik8's
                   or text8's unpacked file, or a directory with the split files
  --data_dir DIR   where data goes (default: data)
  --url URL        download from URL instead of the built-in list (repeatable)
  --md5 HEX        expected MD5 of the downloaded or given zip
  -h, --help       this help
Any other --flag=value is passed to scripts/build_data.py (see its --help).
USAGE
}

data_dir=data
dataset=wikitext-2
tokenizer=
fetch_args=()
build_args=()
batch_size=
seq_len=
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --source | --data_dir | --url | --md5 | --dataset)
      (($# >= 2)) || { echo "error: $1 needs a value" >&2; exit 2; }
      set -- "$1=$2" "${@:3}"; continue ;;
    --source=*) fetch_args+=("$1") ;;
    --url=* | --md5=*) fetch_args+=("$1") ;;
    --data_dir=*) data_dir=${1#*=} ;;
    --dataset=*) dataset=${1#*=} ;;
    --tokenizer=*) tokenizer=${1#*=} ;;
    --batch_size=*) batch_size=${1#*=} ;;
    --seq_len=*) seq_len=${1#*=} ;;
    --*) build_args+=("$1") ;;
    *) echo "error: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Each corpus's tokenizer and shape, as Transformer-XL trains on it; flags given win.
case "$dataset" in
  wikitext-2) defaults=(sentencepiece 32 32) ;;
  wikitext-103) defaults=(word 60 150) ;;
  enwik8 | text8) defaults=(char 22 512) ;;
  *) echo "error: unknown --dataset '$dataset': wikitext-2, wikitext-103, enwik8 or text8" >&2
     exit 2 ;;
esac
tokenizer=${tokenizer:-${defaults[0]}}
batch_size=${batch_size:-${defaults[1]}}
seq_len=${seq_len:-${defaults[2]}}
name=${dataset//-/}
if [[ $dataset != wikitext-2 || $tokenizer != sentencepiece ]]; then
  name+=_$tokenizer
fi

# ${a[@]+"${a[@]}"}: an empty array under set -u, also in the bash 3 of macOS.
"$PYTHON" scripts/fetch_data.py --dataset="$dataset" --dest="$data_dir/$dataset" \
  ${fetch_args[@]+"${fetch_args[@]}"}
# The tokenizer only when it is not SentencePiece, build_data.py's default: its other flags
# (--vocab_size, --sp_model) are refused with word and char.
if [[ $tokenizer != sentencepiece ]]; then
  build_args+=("--tokenizer=$tokenizer")
fi
"$PYTHON" scripts/build_data.py \
  --input="$data_dir/$dataset" \
  --output_dir="$data_dir/${name}_bsz${batch_size}_seqlen${seq_len}" \
  --batch_size="$batch_size" --seq_len="$seq_len" \
  --reuse_existing ${build_args[@]+"${build_args[@]}"}
