"""Generates text from a trained run: a prompt in, the prompt and its continuation out.

  par-generate --model_dir=runs/tiny --prompt="The game" --max_tokens=60
  par-generate --model_dir=runs/base_model --top_p=0.9 --seed=7 \
      --output=runs/base_model/sample.json

The prompt is told apart from the continuation (--mark): in bold on a terminal, between
⟦ and ⟧ elsewhere. --output also writes the text to a file: a .json file gets the prompt, the
continuation and the settings apart; any other name the plain text. An existing file is
never overwritten.

Decodes incrementally (par/generate.py): one token at a time with the memory as the cache,
so every token costs the same. The same run, prompt, flags and --seed give the same text.
The tokenizer is the run's own copy (or its dataset's), checked against the run's checksum.
"""

import json
import math
import os
import sys
from pathlib import Path

from absl import flags

from par import cli
from par import config_flags
from par import signals

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "Run directory.", required=True)
  flags.DEFINE_string("prompt", "", "Text to continue (may be empty).")
  flags.DEFINE_integer("max_tokens", 100, "Tokens to generate.")
  flags.DEFINE_float("temperature", 1.0, "Divides the log-probabilities; 0 is greedy decoding.")
  flags.DEFINE_integer("top_k", 0, "Sample among the k most probable tokens (0: all).")
  flags.DEFINE_float(
    "top_p", 1.0, "Sample among the fewest most probable tokens holding this mass (1: all)."
  )
  flags.DEFINE_integer("seed", 0, "Seed of the sampling.")
  flags.DEFINE_integer(
    "mem_len", 0, "States kept per attention block (0: the run's evaluation memory length)."
  )
  flags.DEFINE_string(
    "data_dir", None, "Where to find the tokenizer if the run directory has no copy."
  )
  flags.DEFINE_enum(
    "mark",
    "auto",
    ["auto", "bold", "brackets", "none"],
    "How the printed prompt is told apart from the continuation: bold (ANSI), between ⟦ ⟧, or "
    "not; auto is bold on a terminal (unless NO_COLOR is set) and brackets elsewhere.",
  )
  flags.DEFINE_string(
    "output",
    None,
    "Also write the text here: .json for {prompt, continuation, settings}, else plain text. "
    "Must not exist yet.",
  )
  config_flags.define_run_source()
  flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def _check_flags():
  if FLAGS.max_tokens < 1:
    raise cli.ParError(f"--max_tokens must be positive, got {FLAGS.max_tokens}")
  if not math.isfinite(FLAGS.temperature):
    raise cli.ParError(f"--temperature must be a finite number, got {FLAGS.temperature}")
  if FLAGS.temperature < 0:
    raise cli.ParError(f"--temperature cannot be negative, got {FLAGS.temperature}")
  if FLAGS.top_k < 0:
    raise cli.ParError(f"--top_k cannot be negative, got {FLAGS.top_k}")
  if not 0 < FLAGS.top_p <= 1:
    raise cli.ParError(f"--top_p must be in (0, 1], got {FLAGS.top_p}")
  if FLAGS.mem_len < 0:
    raise cli.ParError(f"--mem_len cannot be negative, got {FLAGS.mem_len}")
  if FLAGS.output:
    output = Path(FLAGS.output)
    if output.exists():
      raise cli.ParError(f"--output {output} exists; choose a new file")
    if not output.parent.is_dir():
      raise cli.ParError(f"--output: {output.parent} is not a directory")
  config_flags.run_source()


def marks():
  """(before, after) the printed prompt, as --mark says."""
  mark = FLAGS.mark
  if mark == "auto":
    terminal = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    mark = "bold" if terminal else "brackets"
  return {"bold": ("\033[1m", "\033[0m"), "brackets": ("⟦", "⟧"), "none": ("", "")}[mark]


def decode(codec, ids):
  """Text of token ids: end-of-line tokens become newlines."""
  lines, line = [], []
  for token in ids:
    if token == codec.eos_id:
      lines.append(codec.decode(line))
      line = []
    else:
      line.append(token)
  return "\n".join(lines + [codec.decode(line)])


def encode_prompt(codec, prompt):
  """The prompt's ids, its lines separated by end-of-line ids; warns (one line, on stderr) of
  what the tokenizer does not know, which the model sees, and the output shows, as unknown."""
  ids, unknown = [], []
  for k, line in enumerate(prompt.split("\n")):
    some, missing = codec.encode(line)
    ids += ([codec.eos_id] if k else []) + some
    unknown += missing
  if unknown:
    shown = " ".join(dict.fromkeys(unknown))  # In order, each once.
    print(
      f"warning: the tokenizer does not know {shown!r} of the prompt; the model sees it, "
      f"and the output shows it, as {codec.decode([codec.unk_id]).strip()}",
      file=sys.stderr,
    )
  return ids


def main(argv):
  if len(argv) > 1:
    raise cli.ParError(f"unexpected arguments: {' '.join(argv[1:])}")
  _check_flags()
  from par import runs

  run = runs.read_run(FLAGS.model_dir)
  codec = runs.load_tokenizer(run, FLAGS.data_dir)  # Before TensorFlow's slow import.
  cli.import_tensorflow()
  cli.configure_threads()
  from par import generate  # After the quiet import.

  model, _ = runs.load_model(run, *config_flags.run_source())
  prompt = encode_prompt(codec, FLAGS.prompt)
  generator = generate.Generator(model, FLAGS.mem_len or run.eval_mem_len)
  tokens = generator.stream(
    [codec.eos_id] + prompt,  # The text so far ends a line, as every line in training.
    FLAGS.max_tokens,
    FLAGS.temperature,
    FLAGS.top_k,
    FLAGS.top_p,
    FLAGS.seed,
  )
  # Streamed: each token's text is printed as it comes, so Ctrl-C keeps what was shown. A
  # signal is taken between two tokens, never inside TensorFlow (par/signals.py).
  before, after = marks()
  print(f"{before}{decode(codec, prompt)}{after}", end="", flush=True)
  generated = []
  eos = codec.eos_id
  line = prompt[max((k for k, t in enumerate(prompt) if t == eos), default=-1) + 1 :]
  printed = codec.decode(line)  # Of the last line: only it is decoded again, as a piece
  with signals.StopSignals() as stop:  # may change its neighbour's spacing.
    for token in tokens:
      stop.check()
      generated.append(token)
      if token == eos:
        print(flush=True)
        line, printed = [], ""
        continue
      line.append(token)
      text = codec.decode(line)
      if text.startswith(printed):
        print(text[len(printed) :], end="", flush=True)
        printed = text
  print(flush=True)
  if FLAGS.output:
    write_output(Path(FLAGS.output), codec, prompt, generated)


def write_output(path, codec, prompt, generated):
  """The prompt and its continuation (as they read together), to `path` (see --output)."""
  from par import runs

  prompt_text = decode(codec, prompt)
  whole = decode(codec, prompt + generated)
  # Decoded together, the prompt's last piece may take its neighbour's spacing: the
  # continuation is what follows the prompt's text in the whole.
  continuation = (
    whole[len(prompt_text) :] if whole.startswith(prompt_text) else decode(codec, generated)
  )
  if path.suffix == ".json":
    record = {
      "model_dir": FLAGS.model_dir,
      "prompt": prompt_text,
      "continuation": continuation,
      "settings": {
        "max_tokens": FLAGS.max_tokens,
        "temperature": FLAGS.temperature,
        "top_k": FLAGS.top_k,
        "top_p": FLAGS.top_p,
        "seed": FLAGS.seed,
        "mem_len": FLAGS.mem_len,
      },
    }
    data = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()
  else:
    data = (prompt_text + continuation + "\n").encode()
  runs.write_bytes(path, data)


def run():
  """The command's entry point: `par-generate`, `python -m par generate`."""
  cli.run(main, __name__, define_flags)


if __name__ == "__main__":
  run()
