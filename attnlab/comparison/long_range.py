"""Long-range part: model x task x length x seed sweeps on the task configs; final eval metrics."""
from attnlab import files, sweep
from attnlab.comparison.common import _command, _fixed, _grid, _overrides, _train_with_flow, param_count
from attnlab.train import config as cfg_lib


def run_long_range(c, root: str) -> list:
  """Every task: a sweep of model x length x seed; rows with the task's baseline added."""
  rows = []
  for task in c.tasks:
    base = {"num_train_steps": c.steps[task], "log_grad_flow": task == c.gradient_task}
    get_config = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
    field = c.get("length_fields", {}).get(task, "task.seq_len")
    axes = _grid(model=c.models, **{field: c.lengths[task]}, seed=c.seeds)
    for row in sweep.run_sweep(get_config, axes, files.join(root, "long_range", task),
                               train_group=_train_with_flow):
      point = {k: row[k] for k in axes}
      spec = cfg_lib.task_spec(get_config(sweep.config_arg(point)))
      command = _command(c.task_configs[task], point, row["workdir"],
                         _overrides(c, base, row["model"]))
      rows.append(dict(row, task=task, length=row[field], baseline=spec.baseline,
                       baseline_name=spec.baseline_name, command=command,
                       params=param_count(row["workdir"])))
  return rows
