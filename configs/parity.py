"""Parity (Delétang et al. 2023): the running parity of T random bits, evaluated at 2, 4, 8 x T.

  attnlab train --config=parity:lstm --workdir=runs/parity_lstm
  attnlab train --config=parity:transformer --workdir=runs/parity_tf
  attnlab train --config=parity:lstm,task.variant=final --workdir=runs/pf

Argument: a model name (rnn, lstm, gru, lru, transformer) and key=value overrides (seq_len,
task.variant=final for one label per string; the Transformer is causal on the running variant and
bidirectional on the final one). eval_lengths are 2, 4 and 8 x seq_len as the argument sets it
(final_len{L}_score at the end of the run; a later --config.task.seq_len flag leaves them as they
were). Baseline: ln 2 = 0.69; eval_score is the accuracy (chance 0.5), solved at 0.99.
Recorded: docs/results/struggles (compare.py:struggles, T=32, 300 steps, nine models; its
README has the command, the time and the accuracies at 1-8 x T). Expected on 2 CPU cores: the time
and accuracies of that recording; this config's own length and steps are not recorded.
"""
from attnlab.configs import common
from attnlab.train import config as cfg_lib


def get_config(arg=None):
  variant = cfg_lib.parse_arg(arg, "lstm")[1].get("task.variant", "running")  # decides causal
  config = common.make("parity", arg, "lstm", steps=1000, seq_len=20, variant=variant)
  return common.eval_at_multiples(config)
