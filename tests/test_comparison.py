"""The main job end to end on a tiny comparison: every run, every analysis, every report section."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import attnlab.models as M
from attnlab import comparison
from attnlab.analysis import load_comparison, load_run, plots, report, state_size, struggles_report, survival
from attnlab.comparison import generalisation, learning_cost
from attnlab.train.metric_writer import read_jsonl
from attnlab.configs import compare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(hidden_size=8, d_model=8, state_size=8, num_heads=2, d_ff=16, num_layers=1, embed_dim=8)


def tiny_comparison():
  c = compare.get_config("small").comparison
  c.models, c.seeds = ("rnn", "lstm", "transformer"), (0,)
  c.lengths = {"adding": (6,), "copy": (4,)}
  c.steps = {"adding": 4, "copy": 4}
  c.gradient_length = 6
  c.clipping.update(seq_len=6, steps=3, radii=(2.0,), clip_norms=(0.0, 1.0))
  c.seq2seq.update(steps=3, max_len=5, num_test=32, models=("seq2seq_rnn", "seq2seq_attention"))
  c.run_overrides = {"batch_size": 8, "num_eval_batches": 1, "eval_every": 2, "checkpoint_every": 2,
                     "log_every": 1, "checkpoint": {"async_save": False}}
  c.model_overrides = {m: {k: v for k, v in TINY.items() if k in M.default_config(m) and not (
      k == "d_ff" and M.default_config(m).get("block") == "cell")} for m in M.MODELS}
  c.parts = tuple(p for p in comparison.PARTS if p not in ("struggles", "tuning"))  # own tests
  c.learning_cost = dict(tasks=("adding",), models=("rnn", "transformer"), seeds=(0, 1),
                         lengths={"adding": (4, 8)}, steps={"adding": 6})
  c.generalisation.update(factors=(1, 2), num_sequences=16, batch_size=16)
  return c


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("comparison"))
  results = comparison.run(tiny_comparison(), workdir)
  return workdir, results


@pytest.mark.slow
def test_report_has_every_section_and_figure(finished):
  workdir, _ = finished
  text = open(os.path.join(workdir, "report.md")).read()
  for section in report.SECTIONS:
    assert f"## {section}" in text
  for figure in ("grad_norms_init.png", "grad_norms_trained.png", "score_vs_length_adding.png",
                 "clipping_loss.png", "seq2seq_by_length.png", "attention_transformer_0.png",
                 "attention_rnnsearch.png", "forget_gate_lstm.png"):
    assert f"({figure})" in text and os.path.getsize(os.path.join(workdir, figure)) > 1000
  assert "| rnn (" in text and "| baseline | - | 0.1667 |" in text
  assert "learning_cost_adding.png" in text
  assert report.HOCHREITER_HEADER not in text  # their column stands beside adding_h97 alone


@pytest.mark.slow
def test_grad_norms_json_and_results(finished):
  workdir, results = finished
  grad = json.load(open(os.path.join(workdir, "grad_norms.json")))
  assert grad["T"] == 6 and set(grad["init"]) == set(grad["trained"]) == {"rnn", "lstm", "transformer"}
  assert all(len(v) == 6 for v in grad["init"].values())
  saved = json.load(open(os.path.join(workdir, "results.json")))
  assert len(saved["long_range"]) == 3 * 2  # models x (1 adding length + 1 copy length)
  assert {r["status"] for r in saved["long_range"]} == {"finished"}
  assert set(saved["seq2seq"]["models"]) == {"seq2seq_rnn", "seq2seq_attention"}
  by_length = saved["seq2seq"]["models"]["seq2seq_attention"]["exact_by_length"]
  assert set(map(int, by_length)) <= set(range(1, 6))
  assert len(saved["attention"]["rnnsearch"]["weights"][0]) == len(saved["attention"]["rnnsearch"]["source"])


@pytest.mark.slow
def test_commands_in_the_report_rerun_a_point(finished, tmp_path):
  """The first command of the report's rerun section, executed through the command line: as printed
  it finds its point finished and changes nothing; in a new workdir it trains the point again to the
  same metrics. Rerunning the comparison trains nothing new."""
  workdir, results = finished
  text = open(os.path.join(workdir, "report.md")).read()
  command = re.search(r"^- `(python -m attnlab train --config=adding:[^`]*)`$", text, re.M).group(1)
  argv = shlex.split(command)[3:]  # train --config=adding:... (a shipped config by name)
  [row] = [r for r in results["long_range"] if r["command"] == command]
  assert f"--workdir={row['workdir']}" in argv and "--config.num_train_steps=4" in argv
  metrics = os.path.join(row["workdir"], "metrics.jsonl")
  before = (open(metrics).read(), os.path.getmtime(metrics))
  fresh = str(tmp_path / "fresh")
  probes = [{"name": "as_printed", "module": "attnlab", "argv": argv},
            {"name": "fresh", "module": "attnlab",
             "argv": [f"--workdir={fresh}" if a.startswith("--workdir=") else a for a in argv]}]
  for probe in probes:
    probe["env"] = {"ATTNLAB_COMPILATION_CACHE": "off"}
  with open(tmp_path / "probes.json", "w") as f:
    json.dump(probes, f)
  # From this directory, as the comparison was: its config path is relative to it.
  path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
  subprocess.run([sys.executable, "-m", "tests.cli_probe", str(tmp_path / "probes.json"),
                  str(tmp_path / "out.json")], env=dict(os.environ, PYTHONPATH=path), check=True,
                 timeout=600)
  with open(tmp_path / "out.json") as f:
    out = json.load(f)
  for name in ("as_printed", "fresh"):
    assert out[name]["code"] == 0, out[name]["stderr"]
  assert "finished already" in out["as_printed"]["stderr"]
  assert (open(metrics).read(), os.path.getmtime(metrics)) == before

  def logged(w):  # {(step, metric): value} without the timings
    rows = [json.loads(line) for line in open(os.path.join(w, "metrics.jsonl"))]
    return {(r["step"], k): v for r in rows for k, v in r.items()
            if k not in ("step", "steps_per_sec", "checkpoint_blocked_s")}

  want, got = logged(row["workdir"]), logged(fresh)
  assert got.keys() == want.keys() and (4, "eval_loss") in got
  for key, value in want.items():
    assert got[key] == value or got[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
  assert got[(4, "eval_loss")] == pytest.approx(row["eval_loss"], rel=1e-5)
  comparison.run_long_range(tiny_comparison(), workdir)
  assert os.path.getmtime(metrics) == before[1]


@pytest.mark.slow
def test_example_notebook_runs_against_moved_and_recorded_comparisons(finished, tmp_path, monkeypatch):
  """The notebook, run from a directory that is not the repository: against the finished comparison
  moved elsewhere (its results.json names the old paths) it loads a run and draws its attention map;
  against docs/results/compare_medium (a report without its runs) it finishes and says why it skips."""
  import nbclient
  import nbformat
  workdir, _ = finished
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  moved = str(tmp_path / "moved" / "comparison")
  shutil.copytree(workdir, moved)
  cwd = tmp_path / "elsewhere"
  cwd.mkdir()
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures become outputs
  texts = {}
  for name, path in (("moved", moved), ("recorded", os.path.join(root, "docs", "results", "compare_medium"))):
    notebook = nbformat.read(os.path.join(root, "notebooks", "analysis.ipynb"), as_version=4)
    monkeypatch.setenv("ATTNLAB_COMPARISON", path)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], name
    texts[name] = "".join(o.get("text", "") for o in outputs)
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images >= (3 if name == "moved" else 1), name
  assert "trained runs" in texts["moved"] and "with their files here" in texts["moved"]
  assert "keeps only its report" in texts["recorded"]


@pytest.mark.slow
def test_load_comparison_finds_moved_runs(finished, tmp_path):
  """results.json written by a comparison trained as runs/x from another working directory: its
  stored workdirs do not exist from here; they are found under the comparison's new place."""
  workdir, _ = finished
  moved = str(tmp_path / "elsewhere")
  shutil.copytree(workdir, moved)
  with open(os.path.join(moved, "results.json")) as f:
    text = f.read().replace(workdir, "runs/x")
  with open(os.path.join(moved, "results.json"), "w") as f:
    f.write(text)
  comp = load_comparison(moved)
  assert comp.rows and comp.grad_norms["T"] == 6
  assert all(r["workdir"] and r["workdir"].startswith(moved) for r in comp.rows)
  assert load_run(comp.rows[0]["workdir"]).params is not None
  shutil.rmtree(comp.rows[0]["workdir"])
  assert load_comparison(moved).rows[0]["workdir"] is None
  with pytest.raises(FileNotFoundError, match="not a finished comparison"):
    load_comparison(str(tmp_path))


@pytest.mark.slow
def test_learning_cost_end_to_end_censors_and_skips(finished):
  """6 steps solve nothing: every seed is censored at T=4, so T=8 is not trained."""
  workdir, results = finished
  points = {(p["model"], p["length"]): p for p in results["learning_cost"]["points"]}
  for model in ("rnn", "transformer"):
    short, long = points[(model, 4)], points[(model, 8)]
    assert short["status"] == "trained" and len(short["seeds"]) == 2 and short["params"] > 0
    assert all(s["censored"] and s["solved_sequences"] is None for s in short["seeds"])
    assert short["median_censored"] and short["cap_sequences"] == 6 * 8
    assert long["status"] == learning_cost.SKIPPED and not long["seeds"]
    exponent = results["learning_cost"]["exponents"]["adding"][model]
    assert exponent["growth_exponent"] is None and exponent["growth_exponent_ci95"] is None
    assert (exponent["points"], exponent["censored_points"]) == (1, 1)  # kept, not dropped
    assert short["median_sequences"] is None and short["median_ci95"] == [None, None]
  assert not os.path.exists(os.path.join(workdir, "learning_cost", "adding",
                                         "model=rnn,task.seq_len=8,seed=0"))
  text = open(os.path.join(workdir, "report.md")).read()
  assert "> 48 (> 48–> 48); 0/2 solved" in text and learning_cost.SKIPPED in text
  assert "none (beyond the cap at its only T)" in text and "Preview" in text


@pytest.mark.slow
def test_one_model_comparison_end_to_end_and_rerun_trains_nothing(tmp_path):
  """The default suite's end-to-end check (the full tiny comparison above is `slow`): the learning
  cost and gradient flow of one model, its report and results, load_comparison, and a rerun."""
  c = tiny_comparison()
  c.parts = ("learning_cost", "gradients")
  c.learning_cost.update(models=("rnn",), num_seeds=1, lengths={"adding": (4,)})
  c.gradient_length = 4
  workdir = str(tmp_path / "comparison")
  results = comparison.run(c, workdir)
  (point,) = results["learning_cost"]["points"]
  assert (point["model"], point["length"], len(point["seeds"])) == ("rnn", 4, 1)
  # the point's own seed and the data stream of (task, T), applied to the run and its rerun command
  assert point["seeds"][0]["seed"] == survival.stable_seed("rnn", "adding", 4, 0)
  assert point["data_seed"] == survival.stable_seed("data", "adding", 4) != 0
  assert f"--config.data_seed={point['data_seed']}" in point["seeds"][0]["command"]
  text = open(os.path.join(workdir, "report.md")).read()
  assert "## Learning cost" in text and "grad_norms_init.png" in text
  import jax
  assert results["versions"]["jax"] == jax.__version__  # the recording says what it ran with
  assert f"jax {jax.__version__}" in text
  comp = load_comparison(workdir)
  assert [r["model"] for r in comp.rows] == ["rnn"] and comp.grad_norms["T"] == 4
  assert "rnn" in comp.grad_norms["init"]  # gradient flow found the point's first seed
  assert load_run(comp.rows[0]["workdir"]).params is not None
  metrics = os.path.join(comp.rows[0]["workdir"], "metrics.jsonl")
  before = os.path.getmtime(metrics)
  comparison.run(c, workdir)
  assert os.path.getmtime(metrics) == before


def test_learning_cost_skips_longer_lengths_after_a_failure(monkeypatch):
  """Model a fails (median censored) at T=4: not trained at 8 or 16; model b solves every length."""
  trained = []

  def fake_point(c, task, model, length, root, train_group):
    trained.append((model, length))
    values = [None, None, 100] if model == "a" else [length * 10, length * 12, None]
    return {"status": "trained", "seeds": [{"solved_sequences": v, "censored": v is None} for v in values],
            "cap_sequences": 1000, **survival.point_statistics(values, 1000)}

  monkeypatch.setattr(learning_cost, "_train_point", fake_point)
  c = tiny_comparison()
  c.learning_cost = dict(tasks=("adding",), models=("a", "b"), seeds=(0, 1, 2),
                         lengths={"adding": (16, 4, 8)}, steps={"adding": 10})
  out = learning_cost.run_learning_cost(c, "unused")
  assert trained == [("a", 4), ("b", 4), ("b", 8), ("b", 16)]
  status = {(p["model"], p["length"]): p["status"] for p in out["points"]}
  assert status[("a", 8)] == status[("a", 16)] == learning_cost.SKIPPED
  # b's KM medians 48, 96, 192 (the censored seed counts above the cap): slope 1 in log-log
  assert out["exponents"]["adding"]["b"]["points"] == 3
  assert out["exponents"]["adding"]["b"]["growth_exponent"] == pytest.approx(1.0, rel=1e-12)
  assert out["exponents"]["adding"]["a"]["growth_exponent"] is None
  assert out["ranking"]["adding"]["unranked"] == ["a"]
  assert out["num_seeds"] == 3 and out["seeds_reused_across_T"]


def test_point_median_counts_censored_seeds_above_the_cap():
  """Censored at the cap: the KM median is np.median with censored seeds at +inf."""
  assert survival.point_statistics([100, None, 300], 1000)["median_sequences"] == 300.0
  assert survival.point_statistics([100, None, None], 1000)["median_censored"]
  assert survival.point_statistics([100, 200, None, None], 1000)["median_censored"]


def test_seeds_are_drawn_per_point_and_data_per_task_and_length():
  lc = compare.get_config("learning_cost").comparison.learning_cost
  short, long = learning_cost.seeds_of(lc, "adding", "lstm", 25), learning_cost.seeds_of(lc, "adding", "lstm", 50)
  assert len(short) == len(long) == 10 and not set(short) & set(long)
  assert not set(short) & set(learning_cost.seeds_of(lc, "adding", "gru", 25))
  assert learning_cost.data_seed_of(lc, "adding", 25) != learning_cost.data_seed_of(lc, "adding", 50)
  small = compare.get_config("small").comparison.learning_cost  # the preview: seeds 0, 1 at every T
  assert learning_cost.seeds_of(small, "adding", "lstm", 40) == [0, 1]
  assert learning_cost.data_seed_of(small, "adding", 40) is None
  lc.num_seeds = 0
  with pytest.raises(ValueError, match="learning_cost.num_seeds=0"):
    learning_cost.seeds_of(lc, "adding", "lstm", 25)


def test_learning_cost_plot_draws_censored_points(tmp_path):
  series = {"lstm": {"lengths": [10, 20], "seeds": [[50, 60, None], [None, None, 90]],
                     "medians": [60, None], "caps": [100, 100]}}
  path = plots.learning_cost(series, str(tmp_path / "lc.png"), "t")
  assert os.path.getsize(path) > 1000


def test_fmt_seeds_uses_ddof_1_and_counts_the_seeds_left_out_of_the_mean():
  assert report.fmt_seeds([0.146, 0.027, 0.003]) == (
      f"0.059 ± {np.std([0.146, 0.027, 0.003], ddof=1):.3f} (0.146, 0.027, 0.003)")
  assert report.fmt_seeds([0.5]) == "0.500"
  assert report.fmt_seeds([0.1, float("nan"), 0.3]) == "0.200 ± 0.141 (0.100, nan, 0.300); 2/3 finite"
  assert report.fmt_seeds([0.1, None, 0.3]) == "0.200 ± 0.141 (0.100, -, 0.300); 2/3 finite"
  assert report.fmt_seeds([float("inf")]) == "- (inf); 0/1 finite"
  assert report.fmt_seeds([None]) == "-"


def test_long_range_table_gives_each_length_its_own_baseline():
  rows = [dict(task="copy", model="lstm", seed=0, length=t, baseline=b, baseline_name="memoryless",
               eval_score=0.1, eval_loss=b, params=1234) for t, b in ((20, 0.5), (100, 0.2))]
  lines, _ = report.long_range_table(rows)
  assert "| baseline | - | 0.5000 | - | 0.2000 |" in lines
  assert any(line.startswith("| lstm (1,234 params) |") for line in lines)


@pytest.mark.slow
def test_generalisation_table(finished):
  _, results = finished
  gen = results["generalisation"]
  assert gen["factors"] == [1, 2]
  parts = {(p["part"], p["task"]) for p in gen["points"]}
  assert parts == {("long_range", "adding"), ("long_range", "copy"), ("learning_cost", "adding")}
  point = next(p for p in gen["points"] if p["task"] == "adding" and p["part"] == "long_range")
  assert set(point["by_factor"]) == {"1", "2"} and 0.0 <= point["by_factor"]["2"]["eval_score"] <= 1.0
  lines = report.generalisation_section(gen)
  assert "| model | part | trained T | 1x | 2x |" in lines
  assert any(line.startswith("| transformer | long_range | 6 |") for line in lines)


def test_learned_positions_forbid_longer_lengths():
  class Learned:
    positional, max_len = "learned", 10
  assert generalisation._positions_forbid(Learned(), 11)
  assert not generalisation._positions_forbid(Learned(), 10)
  assert not generalisation._positions_forbid(object(), 10_000)


def test_parts_must_be_known():
  c = tiny_comparison()
  c.parts = ("long_range", "nonsense")
  with pytest.raises(ValueError, match="nonsense"):
    comparison.run(c, "unused")


def test_learning_cost_config_runs_only_its_parts():
  c = compare.get_config("learning_cost").comparison
  assert tuple(c.parts) == ("learning_cost", "gradients", "generalisation")
  assert {"transformer", "transformer_window0", "lstm", "lstm_chrono"} <= set(c.learning_cost.models)
  assert c.learning_cost.num_seeds >= 10 and set(c.learning_cost.tasks) == {"adding", "adding_h97", "copy"}
  assert c.gradient_length == min(c.learning_cost.lengths["adding"])  # every model trains there
  # the whole grid (adding to T=1000, copy to 500) and its 2-CPU-core part: the same runs, fewer lengths
  cpu = compare.get_config("learning_cost_cpu").comparison.learning_cost
  assert max(c.learning_cost.lengths["adding"]) == 1000 and max(c.learning_cost.lengths["copy"]) == 500
  for task in ("adding", "adding_h97", "copy"):
    assert set(cpu.lengths[task]) < set(c.learning_cost.lengths[task])
  assert cpu.steps.to_dict() == c.learning_cost.steps.to_dict()
  assert tuple(cpu.models) == tuple(c.learning_cost.models)
  assert tuple(compare.get_config("medium").comparison.parts) == comparison.DEFAULT_PARTS + ("struggles",)
  small = compare.get_config("small").comparison  # the default job
  assert small.parts[0] == "learning_cost" and "long_range" not in small.parts
  assert "transformer_window0" in small.learning_cost.models["adding"]
  with pytest.raises(ValueError, match="learning_cost"):
    compare.get_config("huge")



def tiny_struggles():
  return compare.get_config("struggles_tiny").comparison


@pytest.fixture(scope="module")
def struggles(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("struggles"))
  return workdir, comparison.run(tiny_struggles(), workdir)


def _final(workdir: str) -> dict:
  return next(r for r in reversed(read_jsonl(os.path.join(workdir, "metrics.jsonl"))) if "final_score" in r)


@pytest.mark.slow
def test_struggles_rows_table_and_figures_match_the_runs(struggles):
  from attnlab import data, tasks
  workdir, _ = struggles
  c = tiny_struggles().struggles
  saved = json.load(open(os.path.join(workdir, "results.json")))["struggles"]
  assert list(saved["tasks"]) == ["parity", "flip_flop"]
  assert [(p["task"], p["model"], p["seed"]) for p in saved["points"]] == [
      (t, m, s) for t in ("parity", "flip_flop") for m in ("lstm", "transformer") for s in (0, 1, 2)]
  text = open(os.path.join(workdir, "report.md")).read()
  for section in struggles_report.SECTIONS:
    assert f"## {section}" in text
  for figure in ("struggles_parity.png", "struggles_mqar_p2.png"):
    assert f"({figure})" in text and os.path.getsize(os.path.join(workdir, figure)) > 1000
  for p in saved["points"]:
    final = _final(p["workdir"])  # the trainer's own final evaluation at the training distribution
    assert p["final"]["score"] == pytest.approx(final["final_score"])
    assert p["final"]["scored"] == final["final_scored"]
    assert p["cap_sequences"] == c.steps[p["task"]] * 8 and p["censored"] == (p["solved_sequences"] is None)
    for name, test in p["tests"].items():
      params = dict(saved["tasks"][p["task"]]["train"], **test["params"])
      batch = tasks.generate(p["task"], 16, seed=0, start=data.split_start("test"), **params)
      assert test["scored"] == int(batch["mask"].sum()) and 0 <= test["errors"] <= test["scored"]
      if p["task"] == "parity":  # every test string has exactly its test length
        assert (batch["lengths"] == test["params"]["seq_len"]).all()
    assert f"--workdir={p['workdir']}" in text  # its command
  censored = [p for p in saved["points"] if p["censored"]]
  assert all(f"> {p['cap_sequences']:,}" in text for p in censored)
  mq = saved["mqar"]
  assert sorted({(p["model"], p["width"]) for p in mq["points"]}) == [
      ("lstm", 4), ("lstm", 8), ("transformer", 4), ("transformer", 8)]
  for p in mq["points"]:  # the width reached the model, and its state bytes follow it
    config = json.load(open(os.path.join(p["workdir"], "config.json")))
    if p["model"] == "lstm":
      assert config["model"]["hidden_size"] == p["width"] and p["state"]["bytes"] == 4 * 2 * p["width"]
    else:  # KV cache: layers x 2 x T x d_model floats
      assert config["model"]["d_model"] == p["width"] and config["model"]["d_ff"] == 2 * p["width"]
      assert p["state"] == {"kind": "kv_cache", "floats": 2 * 12 * p["width"], "bytes": 96 * p["width"]}
  sc = saved["selective_copy"]["points"]
  assert sorted({p["model"] for p in sc}) == ["mamba", "mamba_lti"]
  lti = next(p for p in sc if p["model"] == "mamba_lti")
  assert json.load(open(os.path.join(lti["workdir"], "config.json")))["model"]["selective"] is False
  assert "Gu & Dao 2023 Table 1: S4 (time-invariant), no gate | 0.183" in text


def test_struggles_config_follows_the_papers_protocols():
  from attnlab import sweep
  from attnlab.configs import common
  c = compare.get_config("struggles").comparison
  s = c.struggles
  assert len(s.seeds) >= 3 and min(s.steps.values()) >= 10 * 300
  parity = s.tasks.parity
  assert parity.train.to_dict() == {"seq_len": 40, "min_len": 1, "variant": "final"}  # Delétang
  lengths = [t.seq_len for t in parity.tests.values()]
  assert min(lengths) == 41 and max(lengths) == 500
  assert all(t.min_len == t.seq_len for t in parity.tests.values())  # each length on its own
  assert {k: v.p_ignore for k, v in s.tasks.flip_flop.tests.items()} == {"sparse": 0.98, "dense": 0.1}
  assert s.tasks.flip_flop.train.seq_len == 512  # Liu et al.'s T
  assert tuple(s.mqar.widths) == (16, 32, 64, 128) and "transformer" in s.mqar.models
  assert set(s.mqar.models) <= set(s.mqar.width_fields)
  assert tuple(s.selective_copy.models) == ("mamba", "mamba_lti")
  # the Transformer trains with today's scheduled recipe, not the superseded constant rate
  arg = sweep.config_arg({"model": "transformer", **{f"task.{k}": v for k, v in parity.train.items()}})
  config = sweep.load_config_file(c.task_configs["parity"])(arg)
  for key, value in common.TRANSFORMER_OPTIMIZER.items():
    assert config.optimizer[key] == value


def test_struggles_sentences_are_derived_from_the_numbers():
  m = lambda s, e=0: {"score": s, "errors": e, "scored": 100}
  by_model = {"lstm": {"final": [m(1.0)], "len_500": [m(1.0)]},
              "transformer": {"final": [m(0.999)], "len_500": [m(0.52, 48)]},
              "rnn": {"final": [m(0.7)], "len_500": [m(0.995, 1)]}}
  text = struggles_report.tests_sentence("parity", ["len_500"], by_model)
  assert "2 of 3 models reach >= 0.99 at the training distribution on every seed (lstm, transformer)" in text
  assert "on len_500, 2 keep it (lstm, rnn), 1 make no error on any seed (lstm)" in text
  assert "1 fall below 0.6, near chance 0.5 (transformer)" in text
  cells = {"lstm": [(32, [m(0.2)]), (64, [m(0.95)])], "transformer": [(512, [m(1.0)])]}
  text = struggles_report.mqar_sentence(8, cells)
  assert "At P=8, the least state (or KV cache) with mean accuracy >= 0.9: lstm 64 B; transformer 512 B" in text
  censored = {"solved_sequences": None, "cap_sequences": 1280}
  assert struggles_report.solved_text(censored) == "> 1,280"
  solved = lambda n: {"solved_sequences": n, "cap_sequences": 1280}
  assert struggles_report.median_text([solved(64), censored, solved(128)]) == "128"
  assert struggles_report.median_text([censored, censored, solved(128)]) == "> 1,280"
  assert struggles_report.error_rate([m(0.99, 1), m(0.98, 2)]) == pytest.approx(3 / 200)


def test_state_bytes_by_hand():
  lstm = dict(name="lstm", hidden_size=100, num_layers=1)
  assert state_size.state_bytes(lstm, 50) == {"kind": "state", "floats": 200, "bytes": 800}
  mamba = dict(name="mamba", d_model=64, expand=2, d_state=16, conv_width=4, num_layers=2)
  assert state_size.state_floats(mamba, 50) == 2 * (128 * 16 + 128 * 3)  # 4864
  transformer = dict(name="transformer", d_model=64, num_layers=2)
  assert state_size.state_bytes(transformer, 100) == {"kind": "kv_cache", "floats": 25_600, "bytes": 102_400}
  assert state_size.state_floats(dict(name="lru", state_size=32, num_layers=3), 9) == 192
  assert state_size.state_floats(dict(name="slstm", d_model=64, num_layers=2), 9) == 512
  with pytest.raises(ValueError, match="no state size"):
    state_size.state_floats(dict(name="seq2seq_rnn"), 9)


