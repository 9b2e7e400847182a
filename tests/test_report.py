"""The comparison report read at a glance, from fake results (no training): the summary, one colour
per model, axes that fit the data, legends, progress lines naming the seed; and gradient flow over
seeds and lengths with R² next to every decay rate."""
import importlib
import json
import os

import numpy as np
import pytest

from attnlab.analysis import gradients, plots, report
from attnlab.train.metric_writer import MetricWriter

gradient_flow = importlib.import_module("attnlab.comparison.gradient_flow")  # the module, not the part


@pytest.fixture
def figures(monkeypatch):
  """Every figure a plot function makes, kept open for inspection instead of saved."""
  made = []
  monkeypatch.setattr(plots, "_save", lambda fig, path: made.append(fig) or path)
  yield made
  for fig in made:
    plots.plt.close(fig)


def _colours(fig) -> dict:
  """{legend label: colour} of the lines and error bars of a figure's first axes."""
  ax = fig.axes[0]
  handles, labels = ax.get_legend_handles_labels()
  out = {}
  for handle, label in zip(handles, labels):
    line = handle[0] if isinstance(handle, tuple) else getattr(handle, "lines", [handle])[0]
    out[label] = plots.matplotlib.colors.to_hex(line.get_color())
  return out


def _cost_series(models, lengths):
  return {m: {"lengths": list(lengths), "seeds": [[100 * (i + 1), None] for _ in lengths],
              "medians": [100 * (i + 1)] * len(lengths), "caps": [1000] * len(lengths)}
          for i, m in enumerate(models)}


def test_a_model_has_one_colour_in_every_plot(figures):
  plots.learning_cost(_cost_series(["rnn", "lstm", "transformer"], [10, 20]), "a.png", "t")
  plots.gradient_norms({"transformer": np.ones(5), "lstm": np.ones(5)}, "b.png", "t")
  plots.metric_vs_length({"lstm": ([10, 20], [0.1, 0.2], None)}, "c.png", "t", "score")
  cost, grad, score = (_colours(f) for f in figures)
  assert cost["lstm"] == grad["lstm"] == score["lstm"]  # lstm was 2nd, 2nd and 1st: same colour
  assert cost["transformer"] == grad["transformer"] != cost["lstm"]
  assert len({cost["rnn"], cost["lstm"], cost["transformer"]}) == 3


def test_one_length_is_drawn_on_a_categorical_axis_not_a_log_one(figures):
  plots.learning_cost(_cost_series(["lstm", "lru"], [10]), "a.png", "copy")
  plots.metric_vs_length({"lstm": ([10], [0.1], None), "lru": ([10], [0.5], None)}, "b.png", "t", "s")
  plots.learning_cost(_cost_series(["lstm"], [10, 20]), "c.png", "adding")
  for fig in figures[:2]:
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lstm", "lru"]
    assert "10" in ax.get_xlabel()
  assert figures[2].axes[0].get_xscale() == "log"


def test_every_legend_entry_is_drawn(figures):
  """A curve with one nonzero norm (window=0 reads out only its last step) is a visible marker, and
  a model censored at every length is an open marker with an arrow at the cap."""
  window0 = np.array([0.0, 0.0, 0.0, 0.5])
  plots.gradient_norms({"transformer": np.ones(4), "transformer_window0": window0}, "a.png", "t")
  series = _cost_series(["rnn"], [10])
  series["rnn"].update(seeds=[[None, None]], medians=[None])
  plots.learning_cost(series, "b.png", "t")
  grad, cost = (f.axes[0] for f in figures)
  (w0,) = [line for line in grad.get_lines() if line.get_label().startswith("transformer_window0")]
  assert w0.get_marker() == "o" and "distance 0" in w0.get_label()
  assert any(line.get_label().startswith("rnn (median censored") and line.get_marker() == "o"
             for line in cost.get_lines())
  assert any(a.arrow_patch is not None for a in cost.texts)  # the arrow up from the cap


def test_long_titles_wrap():
  fig, ax = plots.plt.subplots()
  plots._title(ax, "adding: training sequences to solve vs T (triangles: censored at the cap) " * 2)
  assert all(len(line) <= plots.TITLE_WIDTH for line in ax.get_title().split("\n"))
  plots.plt.close(fig)


def test_progress_line_names_the_run(tmp_path, capsys):
  writer = MetricWriter(str(tmp_path), 350, enabled=True, label="lstm seed 1")
  writer.progress(100, 0, "loss 0.1234")
  writer.close()
  assert capsys.readouterr().err.startswith("[lstm seed 1] [")
