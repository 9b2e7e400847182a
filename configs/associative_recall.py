"""Associative recall: after P key-value pairs and a query key, answer the key's value.

  attnlab train --config=associative_recall:transformer --workdir=runs/ar_tf

Argument: a model name (rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm) and
key=value overrides (e.g. task.num_pairs=32). Baseline: ln 10 = 2.30 (10 values); eval_score is accuracy (chance 0.1).
Expected on 2 CPU cores (8 pairs, batch 64, 1500 steps): the Transformer reaches only 0.28 accuracy
in 1500 steps (about 1 min (measured with other jobs sharing the 2 cores: an upper bound; with the
earlier d_ff=256 Transformer, before configs/common.py's matched sizes)); recall
needs more steps or a smaller learning rate (seq_icl's Transformer: 100%).
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("associative_recall", arg, "transformer", steps=1500, num_pairs=8)
