"""Suite `scale`: the build at WikiText-103's size (docs/BENCHMARKS.md, "Building at
WikiText-103's size").

On `corpus`, a directory of split files (made first by par-make-corpus with its defaults if
it does not exist: 103M words, 539 MB), a fresh par-build-data per tokenizer, each to a new
directory: word at Transformer-XL's WikiText-103 shape (batch 60, seq_len 150), SentencePiece
(32,000 pieces, trained on `input_sentence_size` lines) at the same shape, and bytes (char)
at the enwik8 shape (batch 22, seq_len 512); wall seconds, peak RSS, tokens and vocabulary
of each.
"""

import shutil
from pathlib import Path

from par.bench import measure

_SCALE_CASES = (  # name, flags of par-build-data
  ("word, batch 60 x seq_len 150", ["--tokenizer=word", "--batch_size=60", "--seq_len=150"]),
  (
    "sentencepiece 32,000, batch 60 x seq_len 150",
    ["--vocab_size=32000", "--batch_size=60", "--seq_len=150"],
  ),
  (
    "char (bytes), batch 22 x seq_len 512",
    ["--tokenizer=char", "--batch_size=22", "--seq_len=512"],
  ),
)


def run(work, options):
  from par.data import records

  corpus = Path(options.corpus)
  rows = []
  if not corpus.exists():
    wall, rss = measure.run_measured(measure.command("make_corpus", f"--output={corpus}"))
    rows.append(("par-make-corpus (defaults)", f"{wall:.1f} s, peak RSS {rss:.0f} MiB"))
  size = sum(p.stat().st_size for p in corpus.glob("*.txt")) / 2**20
  rows.append(("corpus", f"{corpus}: {size:,.0f} MiB of text"))
  for name, extra in _SCALE_CASES:
    if "--tokenizer" not in " ".join(extra):
      extra = [*extra, f"--input_sentence_size={options.input_sentence_size}"]
    output = work / name.split(",")[0].split()[0]
    wall, rss = measure.run_measured(
      measure.command("build_data", f"--input={corpus}", f"--output_dir={output}", *extra)
    )
    meta = records.load_meta(output)
    tokens = sum(split.tokens for split in meta.splits.values())
    rows.append(
      (
        f"build {name}{' (' + extra[-1] + ')' if 'input_sentence' in extra[-1] else ''}",
        f"{wall:.1f} s wall, peak RSS {rss:,.0f} MiB; {tokens:,} tokens, {meta.vocab_size:,} ids",
      )
    )
    shutil.rmtree(output)
  return rows
