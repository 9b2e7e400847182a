"""How long a sweep's points will train, estimated from a few training steps measured here.

  add_estimates(rows, axes, get_config) -> the note to print; each row gains 'estimate'
  measure_step(config, repeats) -> (first call in s (compile), median step in s)

One point per population (points that differ only in seeds and learning-rate fields share a
program and their step) is compiled and timed for `repeats` steps of its batch on this machine's
first device; a point's estimate is its remaining training steps times that median. Evaluation,
checkpoints and compilation are not included, and a population that trains as one program may
take less than the sum of its points' estimates.
"""
import time

import jax
import numpy as np

from attnlab import models, sweep, tasks
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps
from attnlab.train.checkpoints import latest_step_in

REPEATS = 3


def measure_step(config, repeats: int = REPEATS):
  """(seconds of the first call, which compiles; median seconds of the next `repeats` calls) of
  one jitted training step of `config` on a batch of its task."""
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  batch = tasks.generate(config.task.name, config.batch_size, **cfg_lib.task_params(config))
  batch = {k: v for k, v in batch.items() if v.dtype != object}
  state = steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch)
  step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0), donate_argnums=0)
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - start)
  return times[0], float(np.median(times[1:]))


def duration(seconds: float) -> str:
  """'0.4s', '45s', '3m 10s', '2h 05m'."""
  if seconds < 9.95:
    return f"{seconds:.1f}s"
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m {seconds % 60:02d}s"
  return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def add_estimates(rows: list, axes: dict, get_config, repeats: int = REPEATS) -> str:
  """Sets rows[i]['estimate'] (the rows of `sweep.run_sweep(..., dry_run=True)`, in grid order) to
  point i's remaining training time; returns a line that says how it was estimated."""
  pts = sweep.points(axes)
  configs = [get_config(sweep.config_arg(p)) for p in pts]
  index = {sweep.point_name(p): i for i, p in enumerate(pts)}
  compiles, total = [], 0.0
  for group in sweep.populations(pts, configs):
    first, step_s = None, None
    for point in group:
      i = index[sweep.point_name(point)]
      config, row = configs[i], rows[i]
      done = 0 if row["status"] == "new" else latest_step_in(row["workdir"]) or 0
      remaining = 0 if row["status"] == "finished" else max(config.num_train_steps - done, 0)
      if remaining and step_s is None:
        first, step_s = measure_step(config, repeats)
        compiles.append(first)
      row["estimate"] = duration(remaining * step_s) if remaining else "done"
      total += remaining * (step_s or 0.0)
  device = jax.devices()[0].device_kind
  if not compiles:
    return "estimate: every point is finished; nothing to train"
  return (f"estimate: remaining steps x the median of {repeats} measured training steps per "
          f"population on this machine ({device}, {jax.device_count()} device(s)), "
          f"{duration(total)} in all; compiling ({duration(sum(compiles) / len(compiles))} per "
          "population), evaluation and checkpoints come on top")
