"""Multi-query associative recall (Arora et al. 2023, Zoology): after P key-value pairs, answer
every key that comes back.

  python -m experiments.main --config=configs/mqar.py:transformer --workdir=runs/mqar_tf
  python -m experiments.main --config=configs/mqar.py:lstm,task.num_pairs=16 --workdir=runs/mqar_lstm

Argument: a model name (rnn, lstm, gru, lru, transformer — causal here) and key=value overrides
(task.num_pairs, task.num_queries, task.vocab_size, seq_len, task.power_a). T=64, P=8 pairs, a
vocabulary of 256 (Zoology: 8192, T 64-512, P 4-64); eval_lengths 2, 4, 8 x T with the same pairs.
Baseline: ln 128 = 4.85 per query (128 values); eval_score is the accuracy over queries, solved at
0.99.
Expected on 2 CPU cores (T=64, batch 64, 1500 steps, seed 0, one run, measured with other jobs
sharing the 2 cores: an upper bound on time): the causal Transformer solves it at step 1000
(eval_score 0.998 at the end) and keeps 0.994, 0.985, 0.979 of the 4,096 queries at 128, 256, 512,
in 12 min. Recurrent models: not yet recorded.
"""
from configs import common


def get_config(arg=None):
  config = common.make("mqar", arg, "transformer", steps=1500, seq_len=64, num_pairs=8)
  return common.eval_at_multiples(config)
