"""Time one training step of every model of a config file (its sizes and recipe), on this machine.

  python -m experiments.step_times --config=adding --seq_len=100
  (from a wheel: python -m attnlab.experiments.step_times ...)

Prints parameters, the median of 10 steps (batch_size of the config) and the first call (compile).
"""
from absl import app, flags

from attnlab import estimate, layout, sweep
from attnlab.configs import common

flags.DEFINE_string("config", "adding", "config name or file (configs/adding.py)")
flags.DEFINE_integer("seq_len", 100, "task.seq_len")
flags.DEFINE_integer("repeats", 10, "timed steps per model")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  get_config = sweep.load_config_file(layout.resolve_config(FLAGS.config))
  for word in list(common.MODEL_SIZES):
    config = get_config(f"{word},seq_len={FLAGS.seq_len}")
    first, step = estimate.measure_step(config, FLAGS.repeats)
    print(f"{config.task.name} T={FLAGS.seq_len} {word}: {common.param_count(config)} params, "
          f"step {1000 * step:.0f} ms, first call {first:.1f} s", flush=True)


if __name__ == "__main__":
  app.run(main)
