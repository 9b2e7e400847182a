"""The copy memory task (Arjovsky et al. 2016): remember 10 symbols across T blank steps.

  python -m experiments.main --config=configs/copy.py:transformer --workdir=runs/copy_tf
  python -m experiments.main --config=configs/copy.py:lstm,seq_len=200 --workdir=runs/copy_lstm

Argument: a model name (rnn, lstm, gru, lru, transformer — causal for this per-step task) and
key=value overrides. Baseline: the memoryless cross-entropy 10 ln 8 / (T + 20) = 0.173 at T=100;
eval_score is the accuracy on the 10 copied symbols (chance 1/8).
Expected on 2 CPU cores (T=100, batch 64, 1500 steps): the causal Transformer copies every symbol
(eval_score 1.0, loss 1e-4) within 750 steps, 6 min for all 1500 (measured with other jobs sharing
the 2 cores: an upper bound).
"""
from configs import common


def get_config(arg=None):
  return common.make("copy", arg, "transformer", steps=1500, seq_len=100)
