"""Load a run into a notebook: config, parameters as NumPy on the host, the model, the metrics.

  run = attnlab.load_run("runs/adding_lstm", step="best")
  run.model.apply(run.variables, inputs, lengths)               # any hardware, any device count
  run.metrics[["step", "eval_score"]].dropna()                   # a pandas DataFrame

Nothing here needs the devices or sharding the run was trained with: arrays are restored as NumPy.
step='best' falls back to the last checkpoint when best/ is empty (a run killed before its best
save, or one that never evaluated), with a warning. A run without any checkpoint yet loads its
config and metrics, with step and params None; `variables` then says why there are none.
"""
import dataclasses
import warnings

import pandas as pd

from attnlab import files, models
from attnlab.train import checkpoints, config as cfg_lib
from attnlab.train.metric_writer import read_jsonl
from attnlab.train.run_dir import read_config


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
  if step == "best" and checkpoints.latest_step_in(workdir, checkpoints.BEST) is None:
    warnings.warn(f"run {workdir} has no best checkpoint (best/ is empty: no finite evaluation saved yet, "
                  f"or the run was killed before its best save, which a rerun repairs); loaded the last one, step {last}")
    step = "last"
  state, meta, restored_step = checkpoints.restore_numpy(workdir, step)
  return Run(workdir=workdir, step=restored_step, config=config, spec=spec, model=model,
             params=state["params"], opt_state=state["opt_state"], checkpoint_metrics=meta,
             metrics=metrics, model_state=dict(state.get("model_state") or {}))
