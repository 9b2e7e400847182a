"""The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a long sequence.

  python -m experiments.main --config=configs/adding.py:lstm --workdir=runs/adding_lstm
  python -m experiments.main --config=configs/adding.py:transformer,seq_len=150 --workdir=runs/adding_tf

Argument: a model name (rnn, lstm, gru, lru, transformer) and key=value overrides (seq_len, steps,
lr, or any dotted field). Baseline: predicting the mean gives MSE 1/6 = 0.167; "solved" means
|error| < 0.04 per sequence, and eval_score is the fraction solved.
Expected on 2 CPU cores (T=100, batch 64, 2000 steps): MEASURED_BELOW
"""
from configs import common


def get_config(arg=None):
  return common.make("adding", arg, "lstm", steps=2000, seq_len=100)
