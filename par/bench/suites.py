"""The suites by name, what they take (`Options`), and the markdown table they print."""

import dataclasses
import os
import tempfile
from pathlib import Path

from par.bench import blocks
from par.bench import cuts
from par.bench import data
from par.bench import jobs
from par.bench import memory
from par.bench import oneshot
from par.bench import paper_memory
from par.bench import profile
from par.bench import scale
from par.bench import shapes
from par.bench import speed
from par.bench import train

SUITES = {  # name: run(work, options) -> [(measure, value)]
  "data": data.run,
  "train": train.run,
  "speed": speed.run,
  "jobs": jobs.run,
  "cuts": cuts.run,
  "scale": scale.run,
  "shapes": shapes.run,
  "blocks": blocks.run,
  "memory": memory.run,
  "paper_memory": paper_memory.run,
  "profile": profile.run,
  "oneshot": oneshot.run,
}
WITHOUT_TENSORFLOW = (
  "cuts",
  "scale",
  "shapes",
  "paper_memory",
)  # suites that need no TensorFlow here


@dataclasses.dataclass(frozen=True)
class Options:
  """What the suites take; each field's help is its flag's (par/commands/benchmark.py)."""

  text_dir: str  # split files: data, train, speed, jobs, memory, profile, oneshot
  vocab_size: int = 7000  # SentencePiece pieces of the datasets built from text_dir
  repeats: int = 5  # repetitions of each timing: data, cuts
  train_steps: int = 150  # steps per training case: train, speed, jobs, oneshot
  corpus: str = "data/zipf-wt103"  # split files at WikiText-103's size: scale, shapes, paper_memory
  input_sentence_size: int = 100_000  # lines SentencePiece trains on: scale
  shape_steps: int = 3  # training steps per model: shapes, paper_memory
  profile_steps: int = 10  # steps traced: profile
  profile_dir: str = "profile"  # where the trace goes: profile
  data_dir: str | None = None  # a built dataset instead of one from text_dir: profile


def run(name, options):
  """Runs one suite in a temporary directory; returns its markdown table (with a heading
  line that says what was run where)."""
  with tempfile.TemporaryDirectory() as work:
    rows = SUITES[name](Path(work), options)
  if name in ("train", "speed", "jobs", "oneshot"):
    repeats = f", {options.train_steps} steps per training case"
  elif name in ("data", "cuts"):
    repeats = f", repeats {options.repeats}"
  else:
    repeats = ""
  lines = [f"suite {name}, {os.cpu_count()} CPUs{repeats}", "", "| measure | value |", "|---|---|"]
  lines += [f"| {measure} | {value} |" for measure, value in rows]
  return "\n".join(lines) + "\n"
