r"""Train and evaluate one attnlab config (or each variant of a comparison config).

  attnlab --config=configs/adding.py:lstm --workdir=runs/adding_lstm --config.num_train_steps=500
  python -m experiments.main ...    (the same command)

--config=FILE[:ARG] picks a config file and its argument (e.g. a model and key=value overrides);
--config.FIELD=VALUE overrides any field. --list=models|tasks|config prints what can be chosen (the
models and the configs' model words, the tasks and their parameters, or every field of --config with
its value) and exits. With no flags: configs/default.py (the comparison) into
runs/default. Rerunning the same command in the same workdir resumes it; a workdir is used by one
process at a time. Exit codes: 0 done; 2 a user error (one line says what to change, --debug
shows the traceback); 74 a fault (full disk, file-size limit, read-only file system, damaged
checkpoint, out of memory: one line names it; rerun once it is fixed); 130 Ctrl-C and 143 SIGTERM,
each after saving a checkpoint to resume from.
"""
import os
import sys

from absl import flags
from ml_collections import config_flags

import configs
from attnlab import catalog, cli, compile_cache, console, experiment
from attnlab.errors import UserError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "default.py")
# No default here: a default would be loaded (with the overrides) while this module is imported,
# before any error can be reported; `cli.run` fills in configs/default.py instead.
config_flags.DEFINE_config_file("config", None, "config file[:argument]",
                                lock_config=False)
flags.FLAGS["config"].default_as_str = "'configs/default.py'"
flags.DEFINE_string("workdir", "runs/default", "directory for checkpoints, metrics and config")
flags.DEFINE_enum("list", None, catalog.LISTS, "print the models (and the configs' model words), "
                  "the tasks and their parameters, or every field of --config with its value; "
                  "then exit without training")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}: flags are written --name=value (see --help)")
  if FLAGS.list:
    from configs import common
    print({"models": lambda: catalog.models_text(common.MODEL_VARIANTS), "tasks": catalog.tasks_text,
           "config": lambda: catalog.config_text(FLAGS.config)}[FLAGS.list]())
    return
  console.apply_verbosity()  # WARNING unless --verbosity/-v asks for more
  compile_cache.enable()  # repeated runs reuse compiled steps (ATTNLAB_COMPILATION_CACHE=off disables)
  sys.exit(experiment.run(FLAGS.config, FLAGS.workdir))


def console_entry():
  cli.run(main, __doc__, config_flag="config", default_config=_DEFAULT_CONFIG)


if __name__ == "__main__":
  console_entry()
