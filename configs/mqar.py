"""Multi-query associative recall (Arora et al. 2023, Zoology): after P key-value pairs, answer
every key that comes back.

  attnlab train --config=mqar:transformer --workdir=runs/mqar_tf
  attnlab train --config=mqar:lstm,task.num_pairs=16 --workdir=runs/mqar_lstm

Argument: a model name (rnn, lstm, gru, lru, transformer — causal here) and key=value overrides
(task.num_pairs, task.num_queries, task.vocab_size, seq_len, task.power_a). T=64, P=8 pairs, a
vocabulary of 256 (Zoology: 8192, T 64-512, P 4-64); eval_lengths 2, 4, 8 x T with the same pairs.
Baseline: ln 128 = 4.85 per query (128 values); eval_score is the accuracy over queries, solved at
0.99.
Recorded: docs/results/struggles (compare.py:struggles, T=64 with P=4 and 16, 1000 steps, nine
models; its README has the command, the time and the accuracies). Expected on 2 CPU cores: the
time and accuracies of that recording at P=4 and 16; this config's own P=8 is not recorded.
"""
from attnlab.configs import common


def get_config(arg=None):
  config = common.make("mqar", arg, "transformer", steps=1500, seq_len=64, num_pairs=8)
  return common.eval_at_multiples(config)
