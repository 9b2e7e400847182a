"""Flip-flop language (Liu et al. 2023): recall the last written bit at every read, FFL(0.8).

  attnlab train --config=flip_flop:lstm --workdir=runs/ff_lstm
  attnlab train --config=flip_flop:transformer --workdir=runs/ff_tf
  attnlab train --config=flip_flop:transformer,task.p_ignore=0.98 --workdir=runs/ff_sparse

Argument: a model name (rnn, lstm, gru, lru, transformer — causal here) and key=value overrides
(seq_len; task.p_ignore=0.98 the paper's sparse reads, 0.1 its dense ones; p_write = p_read share
the rest). T=128 tokens (64 instructions) instead of the paper's 512, for the CPU. The run ends with
1024 test sequences at T and at 2, 4, 8 x T (eval_lengths): final_errors of final_scored counts the
wrong reads exactly (the paper's point: a rare wrong read is a glitch).
Baseline: ln 2 = 0.69 per read; eval_score is the accuracy over reads (chance 0.5), solved at 0.99.
Recorded: docs/results/struggles (compare.py:struggles, T=64, 300 steps, nine models; its README
has the command, the time and the wrong reads at 1-8 x T). Expected on 2 CPU cores: the time
and reads of that recording; this config's own T=128, 1500 steps are not recorded.
"""
from attnlab.configs import common


def get_config(arg=None):
  config = common.make("flip_flop", arg, "lstm", steps=1500, seq_len=128)
  config.final_eval_sequences = 1024
  return common.eval_at_multiples(config)
