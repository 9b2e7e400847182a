"""Selective copying (Gu & Dao 2023): output, in order, 16 symbols scattered among T noise steps.

  attnlab train --config=selective_copy:transformer --workdir=runs/sc_tf

Argument: a model name (rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm — causal
here) and key=value overrides.
Baseline: ln 8 = 2.08 per scored step; eval_score is the accuracy on the 16 outputs (chance 1/8).
Expected on 2 CPU cores (T=128, batch 64, 1500 steps): the causal Transformer reaches eval_score
0.99 in 13 min (measured with other jobs sharing the 2 cores: an upper bound; with the earlier
d_ff=256 Transformer, before configs/common.py's matched sizes). At seq_len=64 with
--config.task.num_copy=8 (docs/results/selective_copy_mamba, 3 seeds, cap 3000 steps): mamba solves
it in 1000-1400 steps (10-18 min a run), the LSTM in 1800 on one seed and not within 3000 on two.
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("selective_copy", arg, "transformer", steps=1500, seq_len=128)
