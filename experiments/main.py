"""Train and evaluate one attnlab config (or each variant of a comparison config).

  python -m experiments.main --config=configs/adding.py:lstm --workdir=runs/adding_lstm \
      --config.num_train_steps=500

With no flags: configs/default.py into runs/default. Rerunning in the same workdir resumes.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import configs
from attnlab import compile_cache, experiment

_DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "default.py")
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "config file[:argument]",
                                lock_config=False)
flags.DEFINE_string("workdir", "runs/default", "directory for checkpoints, metrics and config")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  compile_cache.enable()  # repeated runs reuse compiled steps (ATTNLAB_COMPILATION_CACHE=off disables)
  sys.exit(experiment.run(FLAGS.config, FLAGS.workdir))


def console_entry():
  app.run(main)


if __name__ == "__main__":
  console_entry()
