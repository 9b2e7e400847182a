"""Load a run into a notebook: config, parameters as NumPy on the host, the model, the metrics.

  run = attnlab.load_run("runs/adding_lstm", step="best")
  run.model.apply(run.variables, inputs, lengths)               # any hardware, any device count
  run.metrics[["step", "eval_score"]].dropna()                   # a pandas DataFrame

Nothing here needs the devices or sharding the run was trained with: arrays are restored as NumPy.
step='best' is the saved step with the best config.checkpoint.best_metric (`checkpoints.best_step`:
never stale, in a workdir of one manager as in one with best/), and falls back to the last
checkpoint, with a warning, when no step has a finite value (a run killed before its first
evaluation, or one whose evaluations were all non-finite); a checkpoint that cannot be restored is
passed over for the newest (next best) intact one, with a warning naming it. Nothing on disk is
changed. A run without any checkpoint yet loads its config and metrics, with step and params None;
`variables` then says why there are none.

  comp = load_comparison("runs/default")   # or docs/results/compare_medium, from any directory
  comp.results, comp.grad_norms, comp.rows  # rows: every trained run, row["workdir"] found or None

A comparison's results.json records each run's workdir as it was named when it trained (relative to
that working directory, or absolute); `load_comparison` finds it again under the comparison's
directory wherever that has been moved, and sets it to None where the run's files are not there (a
recorded comparison under docs/results keeps only its report).
"""
import dataclasses
import json
import os
import warnings

import pandas as pd

from attnlab import files, models
from attnlab.train import checkpoints, config as cfg_lib
from attnlab.train.metric_writer import read_jsonl
from attnlab.train.run_dir import CONFIG_FILE, read_config


@dataclasses.dataclass
class Run:
  workdir: str
  step: int
  config: object  # ml_collections.ConfigDict
  spec: object  # attnlab.tasks.TaskSpec
  model: object  # the Flax module (unbound)
  params: dict  # NumPy arrays
  opt_state: object
  checkpoint_metrics: dict
  metrics: pd.DataFrame
  model_state: dict = dataclasses.field(default_factory=dict)  # e.g. {'batch_stats': ...}; {} if none

  @property
  def variables(self) -> dict:
    """What model.apply takes: {'params': ..., plus the model's state collections}."""
    if self.params is None:
      raise FileNotFoundError(f"run {self.workdir} has no checkpoint yet, so no parameters: only "
                              "its config and metrics were loaded (rerun its command to train it)")
    return {"params": self.params, **self.model_state}


def load_run(workdir: str, step="best") -> Run:
  """Restores step 'best', 'last' or an int of the run in `workdir`."""
  if step not in ("best", "last") and not isinstance(step, int):
    raise ValueError(f"step={step!r}; valid: 'best', 'last' or an int step")
  config = read_config(workdir)
  if config is None:
    raise FileNotFoundError(f"{files.join(workdir, 'config.json')} not found: not an attnlab run")
  spec = cfg_lib.task_spec(config)
  model = models.build(cfg_lib.model_config(config, spec))
  metrics = pd.DataFrame(read_jsonl(files.join(workdir, "metrics.jsonl")))
  last = checkpoints.latest_step_in(workdir)
  if last is None and step in ("best", "last"):
    warnings.warn(f"run {workdir} has no checkpoint yet: loaded its config and metrics, params None")
    return Run(workdir=workdir, step=None, config=config, spec=spec, model=model, params=None,
               opt_state=None, checkpoint_metrics={}, metrics=metrics)
  ck = config.checkpoint
  if step == "best" and checkpoints.best_step(workdir, ck.best_metric, ck.best_mode) is None:
    warnings.warn(f"run {workdir} has no best checkpoint (no step with a finite {ck.best_metric} "
                  f"saved yet); loaded the last one, step {last}")
    step = "last"
  state, meta, restored_step = checkpoints.restore_numpy(workdir, step, warnings.warn,
                                                         ck.best_metric, ck.best_mode)
  return Run(workdir=workdir, step=restored_step, config=config, spec=spec, model=model,
             params=state["params"], opt_state=state["opt_state"], checkpoint_metrics=meta,
             metrics=metrics, model_state=dict(state.get("model_state") or {}))


def with_plain_attention(run: Run):
  """The run's model with attention_impl='plain' (apply it to run.variables): the same function of
  the same parameters, but it sows the attention weights, which 'chunked' and 'fused' (and 'auto'
  on CPU) never materialise. Apply with mutable=['intermediates'] to collect them."""
  config = run.config.copy_and_resolve_references()
  if "attention_impl" in config.model:
    config.model.attention_impl = "plain"
  return models.build(cfg_lib.model_config(config, run.spec))


@dataclasses.dataclass
class Comparison:
  path: str
  results: dict  # results.json
  grad_norms: dict  # grad_norms.json ({} if the comparison has none)
  rows: list  # every trained run: {"task", "model", "length", "workdir" (found, or None), ...}


def find_run_dir(stored: str, comparison_dir: str):
  """The directory of a run recorded as `stored` by the comparison now in `comparison_dir`, or None.

  Tried in order: every tail of `stored` under `comparison_dir`, longest first (a comparison trained
  as runs/x stores runs/x/learning_cost/...; moved to /data/y, that run is /data/y/learning_cost/...),
  then `stored` as it is (absolute, or relative to the working directory)."""
  if not stored:
    return None

  def is_run(d):
    return files.exists(files.join(d, CONFIG_FILE))
  parts = os.path.normpath(stored).split(os.sep)
  for i in range(len(parts)):
    candidate = os.path.join(comparison_dir, *parts[i:])
    if is_run(candidate):
      return candidate
  return stored if is_run(stored) else None


def load_comparison(path: str) -> Comparison:
  """Reads the comparison written to `path` (results.json, grad_norms.json) and finds its runs."""
  results_file = os.path.join(path, "results.json")
  if not os.path.exists(results_file):
    raise FileNotFoundError(f"{results_file} not found: not a finished comparison (run "
                            f"`python -m attnlab train --workdir={path}` to write one)")
  with open(results_file) as f:
    results = json.load(f)
  grad_file = os.path.join(path, "grad_norms.json")
  grad = {}
  if os.path.exists(grad_file):
    with open(grad_file) as f:
      grad = json.load(f)
  from attnlab.comparison.learning_cost import as_rows  # at call time: comparison imports analysis
  rows = list(results.get("long_range") or []) + as_rows(results.get("learning_cost") or {"points": []})
  rows = [dict(r, workdir=find_run_dir(r.get("workdir"), path)) for r in rows]
  return Comparison(path=path, results=results, grad_norms=grad, rows=rows)
