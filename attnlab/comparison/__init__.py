"""The main job: RNN vs LSTM/GRU vs LRU vs attention on long-range tasks, with gradient flow.

`run(comparison, workdir)` runs the parts of a comparison config (see configs/compare.py), each a
sweep of ordinary runs in its own workdir (so everything resumes), then analyses them:
  long_range   model x task x length x seed on the task configs; final eval metrics
  gradients    ||dL/dx_t|| at initialisation and after training on the gradient task, per model
  clipping     a tanh RNN at several spectral radii, with and without global-norm clipping
  seq2seq      encoder-decoders on a seq2seq task; greedy exact-match accuracy by source length
  attention    attention maps of trained models
and writes report.md (`attnlab.analysis.report`), results.json and grad_norms.json.
"""
import json

from attnlab import files
from attnlab.comparison.attention import attention_maps
from attnlab.comparison.clipping import run_clipping
from attnlab.comparison.common import _log
from attnlab.comparison.gradient_flow import gradient_flow
from attnlab.comparison.long_range import run_long_range
from attnlab.comparison.seq2seq import run_seq2seq

__all__ = ["run", "run_long_range", "gradient_flow", "run_clipping", "run_seq2seq", "attention_maps"]


def run(comparison, workdir: str) -> dict:
  """Runs every part of the comparison config in `workdir` and writes the report."""
  from attnlab.analysis import report
  results = {"long_range": run_long_range(comparison, workdir)}
  _log("== gradient flow")
  grad_norms = gradient_flow(results["long_range"], comparison)
  _log("== clipping")
  results["clipping"] = run_clipping(comparison, workdir)
  _log("== seq2seq")
  results["seq2seq"] = run_seq2seq(comparison, workdir)
  results["attention"] = attention_maps(results["long_range"], results["seq2seq"], comparison)
  files.write_text(files.join(workdir, "grad_norms.json"), json.dumps(grad_norms))
  files.write_text(files.join(workdir, "results.json"), json.dumps(results, default=float))
  path = report.write_report(workdir, results, grad_norms, comparison)
  _log(f"report: {path}")
  return results
