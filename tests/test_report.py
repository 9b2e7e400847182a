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


def test_a_run_is_labelled_by_its_model_word_and_seed():
  from attnlab.configs import adding
  from attnlab.train.trainer import run_label
  assert run_label(adding.get_config("transformer_window0,seed=3")) == "transformer_window0 seed 3"
  config = adding.get_config("lstm")
  del config["model_variant"]  # a config built without a model word: its registry model
  assert run_label(config) == "lstm seed 0"


def test_progress_line_names_the_run(tmp_path, capsys):
  writer = MetricWriter(str(tmp_path), 350, enabled=True, label="lstm seed 1")
  writer.progress(100, 0, "loss 0.1234")
  writer.close()
  line = capsys.readouterr().err  # tqdm's meter, one plain line off a terminal
  assert line.startswith("lstm seed 1: ") and "100/350" in line and "loss 0.1234" in line
  assert "\r" not in line


def _curve(rate: float, t: int = 30, noise: float = 0.0, seed: int = 0) -> np.ndarray:
  """||dL/dx_t|| falling `rate` decades per step of distance, with log-normal noise."""
  distance = np.arange(t)[::-1]
  return 10.0**(-rate * distance + noise * np.random.default_rng(seed).normal(size=t))


def test_fit_r2_matches_numpy_float64():
  norms = _curve(0.05, noise=0.3, seed=1)
  y, d = np.log10(norms), np.arange(30)[::-1].astype(np.float64)
  fit = gradients.fit_decay(norms)
  assert fit["r2"] == pytest.approx(np.corrcoef(d, y)[0, 1]**2, rel=1e-10)
  assert 0.0 < fit["r2"] < 1.0
  assert gradients.fit_decay(_curve(0.05))["r2"] == pytest.approx(1.0)


def test_aggregate_fits_gives_mean_spread_and_each_seed():
  rates = [0.04, 0.05, 0.09]
  fits = [gradients.fit_decay(_curve(r, noise=0.2, seed=i)) for i, r in enumerate(rates)]
  agg = gradients.aggregate_fits(fits, seeds=[3, 4, 5])
  got = [f["decades_per_step"] for f in fits]
  assert agg["decades_per_step"] == pytest.approx(np.mean(got))
  assert agg["decades_per_step_std"] == pytest.approx(np.std(got, ddof=1))
  assert agg["r2"] == pytest.approx(np.mean([f["r2"] for f in fits]))
  assert [f["seed"] for f in agg["per_seed"]] == [3, 4, 5] and agg["count"] == agg["finite"] == 3
  cut = gradients.fit_decay(np.array([0.0, 0.0, 1.0]))  # only the read-out step
  mixed = gradients.aggregate_fits([fits[0], cut])
  assert mixed["decades_per_step"] == pytest.approx(got[0]) and mixed["finite"] == 1
  assert mixed["decades_per_step_std"] is None and mixed["nonzero"] == 1
  assert np.isinf(gradients.aggregate_fits([cut, cut])["decades_per_step"])


# Fake runs: model -> decay rate at init and trained; seeds shift the rate a little.
RATES = {"rnn": (0.10, 0.02), "gru": (0.15, 0.01), "transformer": (0.02, 0.03)}


def _fake_measure(row, num_examples):
  norms, fits = {}, {}
  for when, rate in zip(("init", "trained"), RATES[row["model"]]):
    curve = _curve(rate * (1 + 0.1 * row["seed"]), t=row["length"], noise=0.1, seed=row["seed"])
    norms[when], fits[when] = curve.tolist(), gradients.fit_decay(curve)
  return {"norms": norms, "fits": fits, "jacobian": {}}


def _flow_file(workdir, rates):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "grad_flow.jsonl"), "w") as f:
    for step, rate in zip((0, 100, 200), rates):
      f.write(json.dumps({"step": step, "norms": _curve(rate, t=10).tolist()}) + "\n")


def test_gradient_flow_over_seeds_and_lengths(monkeypatch, tmp_path):
  monkeypatch.setattr(gradient_flow, "_measure", _fake_measure)
  rows = [dict(task="adding", model=m, length=t, seed=s, workdir=str(tmp_path / f"{m}_{t}_{s}"))
          for m in RATES for t in (20, 40) for s in (0, 1, 2, 3) if not (m == "rnn" and t == 40)]
  rows.append(dict(rows[0], task="copy"))  # another task: not measured
  for s in (0, 1, 2):
    _flow_file(str(tmp_path / f"gru_40_{s}"), [0.15, 0.05, 0.01 * (s + 1)])

  class C(dict):
    __getattr__ = dict.get
  c = C(gradient_task="adding", gradient_length=20,
        gradient_flow={"lengths": (20, 40), "seeds": (0, 1, 2), "num_examples": 4})
  out = json.loads(json.dumps(gradient_flow.gradient_flow(rows, c)))  # what grad_norms.json holds
  assert out["lengths"] == [20, 40] and out["seeds"] == [0, 1, 2] and out["T"] == 20
  at40 = out["by_length"]["40"]
  assert at40["missing"] == ["rnn"] and set(at40["fits"]) == {"gru", "transformer"}
  init = at40["fits"]["gru"]["init"]
  assert [f["seed"] for f in init["per_seed"]] == [0, 1, 2]  # seed 3 is not among the part's seeds
  each = [f["decades_per_step"] for f in init["per_seed"]]
  assert init["decades_per_step"] == pytest.approx(np.mean(each))
  assert init["decades_per_step_std"] == pytest.approx(np.std(each, ddof=1))
  assert each == pytest.approx([0.15, 0.165, 0.18], abs=0.01)
  flows = at40["through_training"]["gru"]
  assert [f["seed"] for f in flows] == [0, 1, 2] and flows[2]["steps"] == [0, 100, 200]
  assert flows[2]["decades_per_step"] == pytest.approx([0.15, 0.05, 0.03])
  assert flows[2]["r2"] == pytest.approx([1.0] * 3)
  assert out["fits"] == out["by_length"]["20"]["fits"]  # the first length, as before
  assert len(out["init"]["rnn"]) == 20


def _fake_results(grad_norms):
  def point(model, t, seeds, median):
    return {"task": "adding", "model": model, "length": t, "status": "trained", "cap_sequences": 2000,
            "seeds": [{"seed": i, "solved_sequences": v, "censored": v is None, "command": "c"}
                      for i, v in enumerate(seeds)],
            "median": median, "median_censored": median is None, "params": 10}
  points = [point("transformer", 20, [900, 1100, 1000], 1000.0),
            point("transformer_window0", 20, [None] * 3, None),
            point("lstm", 20, [1500, 1600, None], 1600.0),
            point("transformer", 40, [1200, 1300, 1400], 1300.0),
            point("lstm", 40, [None] * 3, None)]
  return {"learning_cost": {"points": points, "seeds": [0, 1, 2],
                            "exponents": {"adding": {}}}}


def test_report_opens_with_a_summary_of_the_findings(monkeypatch, tmp_path):
  monkeypatch.setattr(gradient_flow, "_measure", _fake_measure)
  rows = [dict(task="adding", model=m, length=20, seed=s, workdir=str(tmp_path / f"{m}_{s}"))
          for m in RATES for s in (0, 1, 2)]
  for s in (0, 1, 2):
    _flow_file(str(tmp_path / f"gru_{s}"), [0.15, 0.05, 0.02])

  class C(dict):
    __getattr__ = dict.get
  grad = json.loads(json.dumps(gradient_flow.gradient_flow(
      rows, C(gradient_task="adding", gradient_length=20))))
  out = tmp_path / "report"
  os.makedirs(out)
  path = report.write_report(str(out), _fake_results(grad), grad, {})
  text = open(path).read()
  head = text[:text.index("Published reference points")]
  assert "## Summary" in head
  assert ("T=20: transformer (1,000), lstm (1,600); not solved by transformer_window0" in head
          and "T=40: transformer (1,300); not solved by lstm" in head)
  assert "T=20: with attention 1,000, window=0 not solved" in head and "(#learning-cost)" in head
  fits = grad["fits"]
  ranked = sorted(RATES, key=lambda m: -fits[m]["init"]["decades_per_step"])
  assert ranked == ["gru", "rnn", "transformer"]
  assert ("fastest first, decades/step (R²): " + ", ".join(
      f"{m} {fits[m]['init']['decades_per_step']:.4f} ({fits[m]['init']['r2']:.2f})" for m in ranked)
      in head)
  # the gradient section: every decay rate with its R², every seed's too, and the decay in training
  gru = fits["gru"]["trained"]
  assert (f"| gru | 3 | " in text and f"{gru['decades_per_step']:.4f} ± {gru['decades_per_step_std']:.4f} "
          f"(R² {gru['r2']:.2f})" in text)
  assert "s2 " + f"{gru['per_seed'][2]['decades_per_step']:.4f}/{gru['per_seed'][2]['r2']:.2f}" in text
  assert "(grad_flow_training.png)" in text and os.path.getsize(out / "grad_flow_training.png") > 1000
  assert "| gru | 3 | 0.1500 ± 0.0000 (R² 1.00) | 200 | 0.0200 ± 0.0000 (R² 1.00) |" in text


def test_gradient_flow_config_measures_three_seeds_at_100_and_500():
  from attnlab.configs import compare
  c = compare.gradient_flow_config().comparison
  lengths, seeds, _ = gradient_flow.settings(c, [])
  assert lengths == (100, 500) and len(seeds) >= 3
  assert c.lengths["adding"] == lengths and tuple(c.seeds) == seeds and c.gradient_task == "adding"
  assert set(c.parts) == {"long_range", "gradients"}  # long_range logs flow on the gradient task


@pytest.mark.slow
def test_seeds_trained_together_name_their_seed_in_progress_lines(tmp_path, capsys):
  from attnlab.train import base_config, train_seeds
  configs = []
  for seed in (0, 1):
    config = base_config("rnn", "adding", seq_len=6)
    config.model.hidden_size, config.seed = 4, seed
    config.num_train_steps, config.batch_size, config.num_eval_batches = 2, 4, 1
    config.eval_every = config.checkpoint_every = config.log_every = 2
    config.checkpoint.async_save = False
    configs.append(config)
  train_seeds(configs, [str(tmp_path / f"s{seed}") for seed in (0, 1)])
  lines = capsys.readouterr().err.splitlines()
  for seed in (0, 1):
    assert any(line.startswith(f"rnn seed {seed}: ") and "2/2" in line for line in lines)
