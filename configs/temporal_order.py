"""Temporal order (Hochreiter & Schmidhuber 1997, task 6a): classify the order of two symbols X/Y.

  attnlab train --config=temporal_order:lstm --workdir=runs/to_lstm

Argument: a model name (rnn, lstm, gru, lru, transformer, mamba, mingru, minlstm, slstm) and
key=value overrides.
Baseline: ln 4 = 1.39 (four classes XX, XY, YX, YY); eval_score is accuracy (chance 0.25).
Expected on 2 CPU cores (T=100, batch 64, 1500 steps): the LSTM classifies every sequence
(eval_score 1.0) in 4.5 min (measured with other jobs sharing the 2 cores: an upper bound).
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("temporal_order", arg, "lstm", steps=1500, seq_len=100)
