"""Seq2seq `reverse`: output the source reversed, then EOS — encoder-decoder with and without attention.

  attnlab train --config=reverse:seq2seq_attention --workdir=runs/reverse_search
  attnlab train --config=reverse:seq2seq_rnn --workdir=runs/reverse_encdec

Argument: seq2seq_rnn (RNN encdec, fixed context), seq2seq_attention (RNNsearch) or
transformer_seq2seq, and overrides. Source lengths 1-20 over 10 symbols. Baseline: ln 10 per output
symbol; eval_score is teacher-forced token accuracy, eval_exact whole-sequence accuracy.
Expected on 2 CPU cores (batch 64, 1500 steps): RNNsearch reverses every held-out sequence
(eval_exact 1.0) in 3.7 min (measured with other jobs sharing the 2 cores: an upper bound).
"""
from attnlab.configs import common


def get_config(arg=None):
  return common.make("reverse", arg, "seq2seq_attention", steps=1500, min_len=1, max_len=20)
