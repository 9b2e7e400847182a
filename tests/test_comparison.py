"""The main job end to end on a tiny comparison: every run, every analysis, every report section."""
import json
import os

import pytest

import attnlab.models as M
from attnlab import comparison
from attnlab.analysis import report
from configs import compare

TINY = dict(hidden_size=8, d_model=8, state_size=8, num_heads=2, d_ff=16, num_layers=1, embed_dim=8)


def tiny_comparison():
  c = compare.get_config("small").comparison
  c.models = ("rnn", "lstm", "transformer")
  c.lengths = {"adding": (6, 9), "copy": (4,)}
  c.steps = {"adding": 4, "copy": 4}
  c.gradient_length = 9
  c.clipping.update(seq_len=6, steps=3, radii=(2.0,), clip_norms=(0.0, 1.0))
  c.seq2seq.update(steps=3, max_len=5, num_test=32, models=("seq2seq_rnn", "seq2seq_attention"))
  c.run_overrides = {"batch_size": 8, "num_eval_batches": 1, "eval_every": 2, "checkpoint_every": 2,
                     "log_every": 1, "checkpoint": {"async_save": False}}
  c.model_overrides = {m: {k: v for k, v in TINY.items() if k in M.default_config(m)} for m in M.MODELS}
  return c


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("comparison"))
  results = comparison.run(tiny_comparison(), workdir)
  return workdir, results


def test_report_has_every_section_and_figure(finished):
  workdir, _ = finished
  text = open(os.path.join(workdir, "report.md")).read()
  for section in report.SECTIONS:
    assert f"## {section}" in text
  for figure in ("grad_norms_init.png", "grad_norms_trained.png", "score_vs_length_adding.png",
                 "clipping_loss.png", "seq2seq_by_length.png", "attention_transformer_0.png",
                 "attention_rnnsearch.png", "forget_gate_lstm.png"):
    assert f"({figure})" in text and os.path.getsize(os.path.join(workdir, figure)) > 1000
  assert "| rnn |" in text and "baseline loss 0.1667" in text


def test_grad_norms_json_and_results(finished):
  workdir, results = finished
  grad = json.load(open(os.path.join(workdir, "grad_norms.json")))
  assert grad["T"] == 9 and set(grad["init"]) == set(grad["trained"]) == {"rnn", "lstm", "transformer"}
  assert all(len(v) == 9 for v in grad["init"].values())
  saved = json.load(open(os.path.join(workdir, "results.json")))
  assert len(saved["long_range"]) == 3 * 3  # models x (2 adding lengths + 1 copy length)
  assert {r["status"] for r in saved["long_range"]} == {"finished"}
  assert set(saved["seq2seq"]["models"]) == {"seq2seq_rnn", "seq2seq_attention"}
  by_length = saved["seq2seq"]["models"]["seq2seq_attention"]["exact_by_length"]
  assert set(map(int, by_length)) <= set(range(1, 6))
  assert len(saved["attention"]["rnnsearch"]["weights"][0]) == len(saved["attention"]["rnnsearch"]["source"])


def test_commands_in_the_report_rerun_a_point(finished):
  """A point's command names its config and workdir; rerunning the comparison trains nothing new."""
  workdir, results = finished
  row = results["long_range"][0]
  assert row["command"].startswith("python -m experiments.main --config=")
  assert f"--workdir={row['workdir']}" in row["command"] and "--config.num_train_steps=4" in row["command"]
  before = os.path.getmtime(os.path.join(row["workdir"], "metrics.jsonl"))
  comparison.run_long_range(tiny_comparison(), workdir)
  assert os.path.getmtime(os.path.join(row["workdir"], "metrics.jsonl")) == before


def test_example_notebook_runs_against_the_comparison(finished, monkeypatch):
  import nbclient
  import nbformat
  workdir, _ = finished
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  notebook = nbformat.read(os.path.join(root, "notebooks", "analysis.ipynb"), as_version=4)
  monkeypatch.setenv("ATTNLAB_COMPARISON", workdir)
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": root}}).execute()
  outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.get("output_type") == "error"]
  assert any("long-range runs" in o.get("text", "") for o in outputs)
