"""Few-shot NAS (Zhao et al. 2021, aoiang/few-shot-NAS): a trained one-shot SuperNet split on
one block's choice into three sub-SuperNets, each warm-started from it (`--warm_start`) and
trained further; a pattern is scored by the sub-SuperNet that holds its choice of that block.

  <group>/                         beside the one-shot run: <one-shot run>-few-shot
    s/, f/, i/                     the three sub-SuperNets (run directories; block B fixed,
                                   the others searched as the one-shot SuperNet searched them)
    ranking.json                   every pattern's score from the sub-SuperNet holding it,
                                   the best, and each sub-SuperNet's own ranking.json

Which block: the first (`SPLIT_BLOCK`). Splitting means the paths that differ there stop
sharing every weight above it; the first block's choice changes the input of every block
above it, so its paths share the most weights with the most different inputs, the
interference few-shot NAS splits to remove (its authors split NAS-Bench-201 on one edge of the
cell likewise). It is also where PAR's searches and this project's retrained panels put the
attention that mattered (docs/RESULTS.md: attention in block 0 in every search, mean depth of
the best patterns 0.4).

Budget: each sub-SuperNet trains `steps` steps (the pipeline and the known-answer benchmark
give a third of the one-shot's, so the split costs one more one-shot training), its warm-up
a tenth of them at most: it starts from trained weights.
"""

import dataclasses
from pathlib import Path

from par import runs
from par.config import BLOCK_KINDS
from par.config import SEARCHED
from par.errors import ParError
from par.study import rank

SPLIT_BLOCK = 0
GROUP_SUFFIX = "-few-shot"
RANKING_FILE = rank.RANKING_FILE


def group_dir(one_shot_dir):
  """Where a one-shot run's split goes: beside it."""
  one_shot_dir = Path(one_shot_dir)
  return one_shot_dir.parent / f"{one_shot_dir.name}{GROUP_SUFFIX}"


def sub_configs(one_shot_dir, steps, block=SPLIT_BLOCK):
  """{letter: the TrainConfig of the sub-SuperNet that fixes `block` to it}."""
  run = runs.read_run(one_shot_dir)
  config = run.config
  if not config.model.is_supernet or config.model.architecture:
    raise ParError(f"{one_shot_dir} is not a one-shot SuperNet: only one splits into few shots")
  if not 0 <= block < config.model.n_blocks:
    raise ParError(f"the split block must lie in 0..{config.model.n_blocks - 1}, got {block}")
  if steps < 1:
    raise ParError(f"a sub-SuperNet trains at least one step, got {steps}")
  kinds = list(config.model.kinds)
  subs = {}
  for letter in BLOCK_KINDS:
    kinds[block] = letter
    subs[letter] = dataclasses.replace(
      config,
      model=dataclasses.replace(config.model, architecture="".join(kinds)),
      warm_start=str(Path(one_shot_dir).resolve()),
      train_steps=steps,
      warmup_steps=min(config.warmup_steps, steps // 10),
    )
  return subs


def rank_group(group, tokens=rank.DEFAULT_TOKENS, extra=(), seed=0):
  """Ranks every pattern with the sub-SuperNet that holds it, chooses the best; writes
  group/ranking.json and returns its record (each sub-SuperNet's ranking.json is its own,
  `rank.rank_search`)."""
  group = Path(group)
  records = {
    letter: rank.rank_search(group / letter, tokens, extra, seed=seed) for letter in BLOCK_KINDS
  }
  scores = {}
  for record in records.values():
    scores.update(record["scores"])  # disjoint: each holds its own letter of the block
  order = sorted(scores, key=lambda p: (scores[p], p))
  best = min((r["shared_best"] for r in records.values()), key=lambda p: (scores[p], p))
  first = records[BLOCK_KINDS[0]]
  record = {
    "model": {letter: r["model"] for letter, r in records.items()},
    "requested_tokens": tokens,
    "tokens": first["tokens"],
    "scored_on": first["scored_on"],
    "scores": scores,
    "seconds": sum(r["seconds"] for r in records.values()),
    "order": order,
    "selection": first["selection"],
    "shared_best": best,
    "constraint": None,
    "argmax": None,
    "perturbation": None,  # a split SuperNet has no one mixture to perturb
    "split_block": split_block(group),
  }
  runs.write_json(group / RANKING_FILE, record)
  return record


def split_block(group):
  """The block a group's sub-SuperNets fix."""
  kinds = runs.read_run(Path(group) / BLOCK_KINDS[0]).config.model.kinds
  return next(k for k, kind in enumerate(kinds) if kind != SEARCHED)


def saved_group_ranking(group, tokens=rank.DEFAULT_TOKENS, extra=(), seed=0):
  """The group's ranking.json when every sub-SuperNet's ranking can be reused, else None."""
  group = Path(group)
  path = group / RANKING_FILE
  saved = runs.read_json_cache(path, "the group's ranking")
  if saved is None:
    return None
  for letter in BLOCK_KINDS:
    if rank.saved_ranking(group / letter, tokens, extra, seed=seed) is None:
      return None
  return saved


def held_by(pattern, block=SPLIT_BLOCK):
  """The sub-SuperNet (its letter) that holds `pattern`."""
  return pattern[block]
