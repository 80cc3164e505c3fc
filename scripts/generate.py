"""Generates text from a trained run: a prompt in, the prompt and its continuation out.

  python scripts/generate.py --model_dir=runs/tiny --prompt="The game" --max_tokens=60
  python scripts/generate.py --model_dir=runs/base_model --top_p=0.9 --seed=7

Decodes incrementally (par/generate.py): one token at a time with the memory as the cache,
so every token costs the same. The same run, prompt, flags and --seed give the same text.
The tokenizer is the run's own copy (or its dataset's), checked against the run's checksum.
"""

import math
import sys

from absl import flags

from par import cli
from par import config_flags
from par import signals

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory.", required=True)
_PROMPT = flags.DEFINE_string("prompt", "", "Text to continue (may be empty).")
_MAX_TOKENS = flags.DEFINE_integer("max_tokens", 100, "Tokens to generate.")
_TEMPERATURE = flags.DEFINE_float(
  "temperature", 1.0, "Divides the log-probabilities; 0 is greedy decoding."
)
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample among the k most probable tokens (0: all).")
_TOP_P = flags.DEFINE_float(
  "top_p", 1.0, "Sample among the fewest most probable tokens holding this mass (1: all)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sampling.")
_MEM_LEN = flags.DEFINE_integer(
  "mem_len", 0, "States kept per attention block (0: the run's evaluation memory length)."
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir", None, "Where to find the tokenizer if the run directory has no copy."
)
config_flags.define_run_source()
flags.adopt_module_key_flags(config_flags)  # --help lists them with the script's own


def _check_flags():
  if _MAX_TOKENS.value < 1:
    raise cli.ParError(f"--max_tokens must be positive, got {_MAX_TOKENS.value}")
  if not math.isfinite(_TEMPERATURE.value):
    raise cli.ParError(f"--temperature must be a finite number, got {_TEMPERATURE.value}")
  if _TEMPERATURE.value < 0:
    raise cli.ParError(f"--temperature cannot be negative, got {_TEMPERATURE.value}")
  if _TOP_K.value < 0:
    raise cli.ParError(f"--top_k cannot be negative, got {_TOP_K.value}")
  if not 0 < _TOP_P.value <= 1:
    raise cli.ParError(f"--top_p must be in (0, 1], got {_TOP_P.value}")
  if _MEM_LEN.value < 0:
    raise cli.ParError(f"--mem_len cannot be negative, got {_MEM_LEN.value}")
  config_flags.run_source()


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

  run = runs.read_run(_MODEL_DIR.value)
  codec = runs.load_tokenizer(run, _DATA_DIR.value)  # Before TensorFlow's slow import.
  cli.import_tensorflow()
  cli.configure_threads()
  from par import generate  # After the quiet import.

  model, _ = runs.load_model(run, *config_flags.run_source())
  prompt = encode_prompt(codec, _PROMPT.value)
  generator = generate.Generator(model, _MEM_LEN.value or run.eval_mem_len)
  tokens = generator.stream(
    [codec.eos_id] + prompt,  # The text so far ends a line, as every line in training.
    _MAX_TOKENS.value,
    _TEMPERATURE.value,
    _TOP_K.value,
    _TOP_P.value,
    _SEED.value,
  )
  # Streamed: each token's text is printed as it comes, so Ctrl-C keeps what was shown. A
  # signal is taken between two tokens, never inside TensorFlow (par/signals.py).
  print(decode(codec, prompt), end="", flush=True)
  eos = codec.eos_id
  line = prompt[max((k for k, t in enumerate(prompt) if t == eos), default=-1) + 1 :]
  printed = codec.decode(line)  # Of the last line: only it is decoded again, as a piece
  with signals.StopSignals() as stop:  # may change its neighbour's spacing.
    for token in tokens:
      stop.check()
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


if __name__ == "__main__":
  cli.run(main)
