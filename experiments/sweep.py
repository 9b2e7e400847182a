r"""Sweep a grid of config points, one resumable run per point, and summarise them.

  attnlab sweep --config=adding --sweep='model=[lstm,transformer] task.seq_len=[100,500]' \
      --root=runs/sweep_adding
  attnlab sweep --config=adding --sweep_file=my_grid.txt --dry_run
  python -m attnlab sweep ...     (the same; in a checkout also python -m experiments.sweep ...)

A grid names each axis once: a dotted config field (or steps, seq_len, lr; `model` picks the
config file's model) and its values in brackets; a sweep file holds one axis per line. Finished
points are skipped, unfinished ones resume; results.csv and a summary table are written.
--config names a shipped config (adding) or a config file (configs/adding.py). --dry_run checks
every point, lists it with its status and an estimate of its training time from a few steps measured
on this machine (once per population), and trains and writes nothing.
Exit codes as for experiments.main: 2 after a one-line error (--debug shows the traceback).
"""
import os

from absl import flags, logging

from attnlab import cli, files, layout, sweep
from attnlab.errors import UserError

flags.DEFINE_string("config", None, "config name (adding) or file (configs/adding.py); its "
                    "get_config(arg) takes the point", required=True)
flags.DEFINE_string("sweep", None, "grid: key=[v1,v2] key2=[...]")
flags.DEFINE_string("sweep_file", None, "file with one key=[...] axis per line")
flags.DEFINE_string("root", None, "sweep root directory (default runs/sweep_<config name>)")
flags.DEFINE_bool("dry_run", False, "check every point's config, list the points, their status "
                  "and an estimate of their time; train and write nothing")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise UserError(f"unexpected arguments {argv[1:]}: flags are written --name=value (see --help)")
  logging.set_verbosity(logging.WARNING)
  if bool(FLAGS.sweep) == bool(FLAGS.sweep_file):
    raise UserError("give exactly one of --sweep='key=[v1,v2] ...' and --sweep_file=FILE")
  if FLAGS.sweep_file and not os.path.isfile(FLAGS.sweep_file):
    raise UserError(f"--sweep_file={FLAGS.sweep_file}: file not found")
  text = FLAGS.sweep or open(FLAGS.sweep_file).read()
  root = FLAGS.root or os.path.join("runs", "sweep_" + layout.config_stem(FLAGS.config))
  get_config = sweep.load_config_file(cli.config_file(FLAGS.config))
  axes = sweep.parse_grid(text)
  rows = sweep.run_sweep(get_config, axes, root, dry_run=FLAGS.dry_run)
  if FLAGS.dry_run:
    from attnlab import estimate  # pylint: disable=import-outside-toplevel  (jax compiles)
    note = estimate.add_estimates(rows, axes, get_config)
    print(sweep.summary_table(rows))
    print(note)
    print(f"dry run: {len(rows)} valid points, nothing trained or written")
  else:
    print(sweep.summary_table(rows))
    print(f"results in {files.join(files.absolute(root), 'results.csv')}")


def console_entry():
  cli.run(main, __doc__)


if __name__ == "__main__":
  console_entry()
