"""Small formatting helpers shared by the renderers (the check runs in tests, so it imports no
plotting or training code).

`attnlab.analysis.report` formats the same numbers the same way (`_sequences`: '12,352'); both take
Hochreiter & Schmidhuber's table from `attnlab.tasks.adding.HOCHREITER_RESULTS`.
"""
import numpy as np

from attnlab.tasks.adding import HOCHREITER_RESULTS

LABELS = {"rnn": "tanh RNN", "lstm": "LSTM, forget bias 1", "lstm_chrono": "LSTM, chrono init",
          "gru": "GRU", "lru": "LRU", "transformer": "Transformer",
          "transformer_window0": "Transformer, window=0", "mamba": "Mamba", "mingru": "minGRU",
          "minlstm": "minLSTM", "slstm": "sLSTM"}


def label(model: str, labels=None) -> str:
  """The name a table gives a registry model ('lstm_chrono' -> 'LSTM, chrono init')."""
  return (labels or LABELS).get(model, model)


def seqs(v) -> str:
  """12352.0 -> '12,352'."""
  return f"{float(v):,.0f}"


def kparams(n) -> str:
  """67329 -> '67.3k'."""
  return f"{n / 1000:.1f}k"


def table(header: list, rows: list) -> list:
  """Markdown table lines: header, separator, one line per row."""
  def line(cells):
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"
  return [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]


def growth_exponent(lengths, medians) -> float:
  """Slope of log(median sequences) on log T (the learning-cost part's fit); None under 2 points."""
  if len(lengths) < 2:
    return None
  return float(np.polyfit(np.log(lengths), np.log(medians), 1)[0])


def hochreiter_adding() -> dict:
  """T -> (training sequences, wrong of 2560): the paper's (tasks.adding.HOCHREITER_RESULTS)."""
  return dict(HOCHREITER_RESULTS)
