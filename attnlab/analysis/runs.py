"""Load a run into a notebook: config, parameters as NumPy on the host, the model, the metrics.

  run = attnlab.load_run("runs/adding_lstm", step="best")
  run.model.apply(run.variables, inputs, lengths)               # any hardware, any device count
  run.metrics[["step", "eval_score"]].dropna()                   # a pandas DataFrame

Nothing here needs the devices or sharding the run was trained with: arrays are restored as NumPy.
"""
import dataclasses

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
  state, meta, restored_step = checkpoints.restore_numpy(workdir, step)
  metrics = pd.DataFrame(read_jsonl(files.join(workdir, "metrics.jsonl")))
  return Run(workdir=workdir, step=restored_step, config=config, spec=spec, model=model,
             params=state["params"], opt_state=state["opt_state"], checkpoint_metrics=meta,
             metrics=metrics, model_state=dict(state.get("model_state") or {}))
