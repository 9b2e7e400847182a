r"""Sweep a grid of config points, one resumable run per point, and summarise them.

  python -m experiments.sweep --config=configs/adding.py \
      --sweep='model=[lstm,transformer] task.seq_len=[100,500]' --root=runs/sweep_adding
  python -m experiments.sweep --config=configs/adding.py --sweep_file=my_grid.txt --dry_run

A grid names each axis once: a dotted config field (or steps, seq_len, lr; `model` picks the
config file's model) and its values in brackets; a sweep file holds one axis per line. Finished
points are skipped, unfinished ones resume; results.csv and a summary table are written.
Exit codes as for experiments.main: 2 after a one-line error (--debug shows the traceback).
"""
import os

from absl import flags, logging

from attnlab import cli, files, sweep
from attnlab.errors import UserError

flags.DEFINE_string("config", None, "config file (its get_config(arg) takes the point)", required=True)
flags.DEFINE_string("sweep", None, "grid: key=[v1,v2] key2=[...]")
flags.DEFINE_string("sweep_file", None, "file with one key=[...] axis per line")
flags.DEFINE_string("root", None, "sweep root directory (default runs/sweep_<config name>)")
flags.DEFINE_bool("dry_run", False, "check every point's config, list the points and their status; "
                  "train and write nothing")
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
  root = FLAGS.root or os.path.join("runs", "sweep_" + os.path.basename(FLAGS.config)[:-3])
  rows = sweep.run_sweep(sweep.load_config_file(FLAGS.config), sweep.parse_grid(text), root,
                         dry_run=FLAGS.dry_run)
  print(sweep.summary_table(rows))
  if FLAGS.dry_run:
    print(f"dry run: {len(rows)} valid points, nothing trained or written")
  else:
    print(f"results in {files.join(files.absolute(root), 'results.csv')}")


if __name__ == "__main__":
  cli.run(main, __doc__)
