"""Research runs: the small comparison trained for real, and what its results must show.

Slow (minutes on 2 CPU cores): `python -m pytest -m slow`. The outcomes of the larger comparisons
are recorded in docs/results/.
"""
import json
import os

import pytest

from attnlab import comparison
from configs import compare


@pytest.mark.slow
def test_small_comparison_shows_vanishing_gradients_and_attention(tmp_path):
  workdir = str(tmp_path / "compare_small")
  results = comparison.run(compare.get_config("small").comparison, workdir)
  grad = json.load(open(os.path.join(workdir, "grad_norms.json")))
  fits = grad["fits"]
  # The tanh RNN loses far more decades of gradient over the same distance than the Transformer.
  assert fits["rnn"]["init"]["span_decades"] > 3 * fits["transformer"]["init"]["span_decades"]
  assert fits["rnn"]["init"]["decades_per_step"] > fits["lstm"]["init"]["decades_per_step"]
  score = {(r["task"], r["model"], r["length"]): r["eval_score"] for r in results["long_range"]}
  # Attention solves adding at T=50; the tanh RNN does not.
  assert score[("adding", "transformer", 50)] > 0.5 > score[("adding", "rnn", 50)]
  loss = {(r["task"], r["model"], r["length"]): r["eval_loss"] for r in results["long_range"]}
  assert loss[("adding", "rnn", 50)] > 10 * loss[("adding", "transformer", 50)]
  # Without attention, a seq2seq RNN degrades with source length; RNNsearch does not.
  s2s = results["seq2seq"]["models"]
  longest = max(s2s["seq2seq_attention"]["exact_by_length"], key=int)
  assert s2s["seq2seq_attention"]["exact_by_length"][longest] > s2s["seq2seq_rnn"]["exact_by_length"][longest]
