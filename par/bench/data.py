"""Suite `data`: the dataset build of par/data/build.py (docs/BENCHMARKS.md, "Dataset build").

- build: the whole `par-build-data` run, tokenizer training and TensorFlow's import included,
  as a fresh process (wall seconds and peak RSS), `repeats` times;
- pipeline: in one process, tokenize + context-batch + write (what the build does after
  training the tokenizer) against a bare sentencepiece encode of the same lines, alternated
  `repeats` times; the ratio of medians is the figure;
- memory: peak RSS of a build whose train split is the text repeated 2, 8 and 32 times (with
  the tokenizer given, so that only the pipeline grows), and the increment per MiB of text.
"""

from pathlib import Path

from par.bench import measure
from par.errors import ParError


def run(work, options):
  # Imported after cli.import_tensorflow(), which hides TensorFlow's start-up notices.
  import sentencepiece as spm

  from par.config import DataConfig
  from par.data import records
  from par.data import text as text_lib
  from par.data import tokenizer

  text_dir = Path(options.text_dir)
  if not text_dir.is_dir():
    raise ParError(f"--text_dir {text_dir} does not exist")
  rows = []

  # 1. The whole build, as a user runs it.
  builds = [
    measure.run_measured(measure.build_command(text_dir, work / "ds", options.vocab_size))
    for _ in range(options.repeats)
  ]
  walls = [w for w, _ in builds]
  rows.append(
    (
      "whole build, wall s (median; min-max)",
      f"{measure.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
    )
  )
  rows.append(("whole build, peak RSS MiB", f"{max(m for _, m in builds):.0f}"))

  # 2. Tokenize + batch + write against a bare sentencepiece encode, same lines, same process.
  config = DataConfig(vocab_size=options.vocab_size)
  texts = [text_lib.read_text(p) for p in text_lib.find_split_files(text_dir).values()]
  model = (work / "ds" / records.TOKENIZER_FILE).read_bytes()
  processor = spm.SentencePieceProcessor(model_proto=model)
  ours_tokenizer = tokenizer.Tokenizer(model)  # Built once, as `processor` is.
  ours_tokenizer.tokenize(["warm up"])

  def bare_encode():
    for text in texts:
      processor.encode(text.lines)

  def pipeline(directory):
    for j, text in enumerate(texts):
      stream = ours_tokenizer.tokenize(text.lines)
      windows, _, _ = records.context_batch(stream, config.batch_size, config.seq_len)
      records.write_split(windows, directory, f"split{j}", 1)

  bare, ours = [], []
  for i in range(options.repeats):
    bare.append(measure.timed(bare_encode))
    ours.append(measure.timed(lambda i=i: pipeline(work / f"pipeline{i}")))
  tokens = sum(len(ours_tokenizer.tokenize(t.lines)) for t in texts)
  bare_wall, ours_wall = measure.median([w for w, _ in bare]), measure.median([w for w, _ in ours])
  rows.append(
    (
      "bare sentencepiece encode, wall s / CPU s (medians)",
      f"{bare_wall:.3f} / {measure.median([c for _, c in bare]):.3f}",
    )
  )
  rows.append(
    (
      "tokenize + batch + write, wall s / CPU s (medians)",
      f"{ours_wall:.3f} / {measure.median([c for _, c in ours]):.3f}",
    )
  )
  rows.append(("wall ratio, same run (target <= 3)", f"{ours_wall / bare_wall:.2f}"))
  rows.append(("tokens/s, tokenize + batch + write", f"{tokens / ours_wall:,.0f}"))

  # 3. Memory against split size, tokenizer given.
  raw = text_lib.find_split_files(text_dir)["train"].read_bytes()
  previous = None
  for copies in (2, 8, 32):
    path = work / f"x{copies}.txt"
    path.write_bytes(raw * copies)
    _, rss = measure.run_measured(
      measure.build_command(
        path,
        work / f"m{copies}",
        options.vocab_size,
        f"--sp_model={work / 'ds' / records.TOKENIZER_FILE}",
      )
    )
    size = len(raw) * copies / 2**20
    step = (
      ""
      if previous is None
      else f", +{(rss - previous[1]) / (size - previous[0]):.0f} MiB per MiB of text"
    )
    rows.append((f"peak RSS, train = {size:.1f} MiB of text", f"{rss:.0f} MiB{step}"))
    previous = (size, rss)
  return rows
