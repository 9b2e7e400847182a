r"""Train and evaluate one attnlab config (or each variant of a comparison config).

  attnlab train --config=adding:lstm --workdir=runs/adding_lstm --config.num_train_steps=500
  python -m attnlab train ...      (the same; in a checkout also python -m experiments.main ...)

--config=NAME[:ARG] picks a shipped config by name (`attnlab config` lists them; adding is
configs/adding.py) and its argument (e.g. a model and key=value overrides); --config=FILE[:ARG] a
config file by path. --config.FIELD=VALUE overrides any field. --list=models|tasks|config|configs
(= `attnlab models`, `attnlab tasks`, `attnlab config NAME:ARG`, `attnlab config`) prints what can
be chosen and exits. With no flags: configs/default.py (the comparison) into runs/default.
Rerunning the same command in the same workdir resumes it; a workdir is used by one process at a
time. Exit codes: 0 done; 2 a user error (one line says what to change, --debug
shows the traceback); 74 a fault (full disk, file-size limit, read-only file system, damaged
checkpoint, out of memory: one line names it; rerun once it is fixed); 130 Ctrl-C and 143 SIGTERM,
each after saving a checkpoint to resume from.
"""
import os
import sys

from absl import flags
from ml_collections import config_flags

from attnlab import catalog, cli, compile_cache, configs, console, experiment
from attnlab.errors import UserError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "default.py")
# No default here: a default would be loaded (with the overrides) while this module is imported,
# before any error can be reported; `cli.run` fills in configs/default.py instead.
config_flags.DEFINE_config_file("config", None, "config name or file[:argument], e.g. adding:lstm "
                                "or configs/adding.py:lstm", lock_config=False)
flags.FLAGS["config"].default_as_str = "'default'"
flags.DEFINE_string("workdir", "runs/default", "directory for checkpoints, metrics and config")
flags.DEFINE_enum("list", None, catalog.LISTS, "print the models (and the configs' model words), "
                  "the tasks with their parameters and criteria, or every field of --config with "
                  "its value, default and choices; then exit without training")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}: flags are written --name=value (see --help)")
  if FLAGS.list:
    from attnlab.configs import common
    texts = {"models": lambda: catalog.models_text(common.MODEL_VARIANTS),
             "tasks": catalog.tasks_text, "configs": catalog.configs_text,
             "config": lambda: catalog.config_text(FLAGS.config, FLAGS["config"].config_filename)}
    print(texts[FLAGS.list]())
    return
  console.apply_verbosity()  # WARNING unless --verbosity/-v asks for more
  compile_cache.enable()  # repeated runs reuse compiled steps (ATTNLAB_COMPILATION_CACHE=off disables)
  sys.exit(experiment.run(FLAGS.config, FLAGS.workdir))


def console_entry():
  cli.run(main, __doc__, config_flag="config", default_config=_DEFAULT_CONFIG)


if __name__ == "__main__":
  console_entry()
