"""A pipeline's work directory: the names of what it holds (par/runs.py has a run's own).

  work_dir/
    search/              the single-level SuperNet search (a run directory, par/runs.py),
                         with its ranking.json (par/study/rank.py)
    search-split0.2/     a search with a held-out architecture split (--arch_split=0.2)
    search-uniform/      a search with another SuperNet (--samplings=soft,uniform,fair):
                         search-<sampling>[-split<F>]/
    <search>-few-shot/   a search split into few-shot sub-SuperNets (par/study/fewshot.py)
    models/<pattern>/    each derived pattern and the baseline, retrained from scratch;
                         test_nll.npy beside its results: its per-token test NLL
    results.json         the comparison, one row per search and per retrained pattern
    results.md           the same as markdown tables
    times.json           each run's measured times per token, and the machine they were
                         measured on (par/study/timing.py)
    tradeoff.png, .pdf   valid perplexity against measured time per token, a point per model
    <search>-architecture.png/.pdf, <search>-probabilities.png/.pdf
                         each search's architecture at the end, and its history

With seeds (`--seeds=1,2,3`), each seed's pipeline has this layout in work_dir/seed-<s>/,
and work_dir holds the comparison over seeds (par/study/seeds.py): results.json and
results.md with one row per derivation over the seeds, tradeoff.png/.pdf with ± sd bars,
depth.png/.pdf, agreement.png/.pdf (each search's shared-weight scores against the retrained
losses, a panel per search), and times.json for every seed's runs.
"""

from pathlib import Path

MODELS = "models"  # the retrained patterns, one run directory each
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
TIMES_FILE = "times.json"  # the measured times per token, reused by a call that adds nothing
TEST_NLL = "test_nll.npy"  # beside each retrained model's results: its per-token test NLL
TRADEOFF_FIGURE = "tradeoff"  # .png and .pdf
DEPTH_FIGURE = "depth"  # .png and .pdf, over seeds only
AGREEMENT_FIGURE = "agreement"  # .png and .pdf, over seeds only: scores against retraining


def seed_dir(work_dir, seed):
  """Where one seed's pipeline of a pipeline over seeds lives."""
  return Path(work_dir) / f"seed-{seed}"
