"""The study around the search: what turns trained SuperNets into an answer a paper can use.

It owns
- `pipeline`: search → rank → derive → retrain → compare, one seed or several
  (`par-pipeline`);
- `seeds`: the comparison over seeds (means ± sd, intervals pooled over seeds, the ranking
  against the seed-to-seed noise ceiling);
- `rank`: a search's own ranking of patterns by its shared weights (`par-rank`);
- `known_answers`: the known-answer benchmark (`par-search-benchmark`);
- `compare`: per-token test NLLs and the paired comparisons between retrained models;
- `timing`: measured time per token, in interleaved rounds;
- `jobs`: the trainings and rankings run at once;
- `workdir`: the names of what a pipeline's work directory holds.

It sits above training and the search's statistics (par/train, par/search) and below the
commands; within it, imports point down this list read from the bottom: `workdir` first,
`pipeline` last, and nothing here imports a module that imports it back.
"""
