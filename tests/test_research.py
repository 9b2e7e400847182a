"""Research runs: the small comparison trained for real, and what its results must show.

Slow (minutes on 2 CPU cores): `python -m pytest -m slow`. The outcomes of the larger comparisons
are recorded in docs/results/.
"""
import json
import os

import pytest

from attnlab import comparison
from attnlab.configs import compare


@pytest.mark.slow
def test_small_comparison_shows_vanishing_gradients_and_attention(tmp_path):
  workdir = str(tmp_path / "compare_small")
  results = comparison.run(compare.get_config("small").comparison, workdir)
  fits = json.load(open(os.path.join(workdir, "grad_norms.json")))["fits"]
  # Per step of distance the tanh RNN's input gradients fall far faster than the Transformer's
  # (the span alone does not separate them with the last-step readout: the read-out step stands out
  # in the Transformer too), and faster than the LSTM's.
  rate = lambda model: fits[model]["init"]["decades_per_step"]
  assert rate("rnn") > 3 * rate("transformer") and rate("rnn") > rate("lstm")
  # Without attention between positions, no gradient reaches any step but the one read out.
  assert fits["transformer_window0"]["init"]["nonzero"] == 1
  points = {(p["task"], p["model"], p["length"]): p for p in results["learning_cost"]["points"]}
  # Attention solves adding at both lengths; the tanh RNN and window=0 are censored at the first.
  assert not points[("adding", "transformer", 20)]["median_censored"]
  assert not points[("adding", "transformer", 40)]["median_censored"]
  assert points[("adding", "rnn", 20)]["median_censored"]
  assert points[("adding", "transformer_window0", 20)]["median_censored"]
  # Without attention, a seq2seq RNN degrades with source length; RNNsearch does not.
  s2s = results["seq2seq"]["models"]
  longest = max(s2s["seq2seq_attention"]["exact_by_length"], key=int)
  assert s2s["seq2seq_attention"]["exact_by_length"][longest] > s2s["seq2seq_rnn"]["exact_by_length"][longest]
