"""Time one training step of every model of a config file (its sizes and recipe), on this machine.

  python -m experiments.step_times --config=configs/adding.py --seq_len=100

Prints parameters, the median of 10 steps (batch_size of the config) and the first call (compile).
"""
import time

import jax
import numpy as np
from absl import app, flags

from attnlab import models, sweep, tasks
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps
from attnlab.configs import common

flags.DEFINE_string("config", "configs/adding.py", "config file")
flags.DEFINE_integer("seq_len", 100, "task.seq_len")
flags.DEFINE_integer("repeats", 10, "timed steps per model")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  get_config = sweep.load_config_file(FLAGS.config)
  for word in list(common.MODEL_SIZES):
    config = get_config(f"{word},seq_len={FLAGS.seq_len}")
    spec, model_config = cfg_lib.validate(config, 1)
    model = models.build(model_config)
    tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
    batch = tasks.generate(config.task.name, config.batch_size, **cfg_lib.task_params(config))
    batch = {k: v for k, v in batch.items() if v.dtype != object}
    state = steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch)
    step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0), donate_argnums=0)
    times = []
    for _ in range(FLAGS.repeats + 1):
      start = time.time()
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics["loss"])
      times.append(time.time() - start)
    print(f"{config.task.name} T={FLAGS.seq_len} {word}: {common.param_count(config)} params, "
          f"step {1000 * np.median(times[1:]):.0f} ms, first call {times[0]:.1f} s", flush=True)


if __name__ == "__main__":
  app.run(main)
