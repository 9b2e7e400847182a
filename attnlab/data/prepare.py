r"""Writes a generated task's splits as array_record files (builders.prepare).

  python -m attnlab.data.prepare --task=copy --seq_len=1000 \
      --num_train=10000 --num_validation=1000 --num_test=1000 \
      [--seed=0] [--data_dir=DIR]

Task params are flags of the same name (--seq_len, --num_copy, --max_len,
--p_ignore=0.98, --variant=final, ...; see each task module), read as Python
literals (a plain word such as final stays a string); unset ones take the
task's defaults. data_dir defaults to $ATTNLAB_DATA_DIR, else
~/tensorflow_datasets. Prints the folder written, the time taken and the size
on disk; a config already on disk is reused, not written again.
"""

import ast
import os
import time

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from attnlab import tasks
from attnlab.data import builders

PARAMS = sorted({name for task in builders.PREPARABLE
                 for name in tasks.spec(task).params})

flags.DEFINE_enum('task', None, builders.PREPARABLE, 'Task to prepare.')
flags.DEFINE_string('data_dir', None, 'Root folder of the tfds datasets.')
flags.DEFINE_integer('seed', 0, 'Data seed, in [0, 2**32 - 1].')
for _size, _default in builders.DEFAULT_SIZES.items():
  flags.DEFINE_integer(_size, _default, f'Examples in the {_size[4:]} split.')
for _param in PARAMS:
  flags.DEFINE_string(_param, None, 'Task parameter (default: the task\'s).')
flags.mark_flag_as_required('task')
FLAGS = flags.FLAGS


def folder_size(path) -> int:
  """Bytes in the files directly under `path`."""
  return sum(os.path.getsize(os.path.join(path, name))
             for name in os.listdir(path))


def literal(text: str):
  """'9' -> 9, '0.98' -> 0.98, 'None' -> None; other words stay strings ('final')."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def main(argv):
  del argv
  tfds.disable_progress_bar()
  task = FLAGS.task
  params = {name: literal(FLAGS[name].value) for name in PARAMS
            if FLAGS[name].value is not None}
  sizes = {name: FLAGS[name].value for name in builders.DEFAULT_SIZES}
  try:
    builder = builders.builder(task, FLAGS.data_dir, seed=FLAGS.seed, **sizes,
                               **params)
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  reused = builder.is_prepared()
  start = time.perf_counter()
  builders.prepare(task, FLAGS.data_dir, seed=FLAGS.seed, **sizes, **params)
  seconds = time.perf_counter() - start
  megabytes = folder_size(builder.data_dir) / 2**20
  action = 'reused' if reused else 'wrote'
  print(f'{action} {builder.name}/{builder.builder_config.name}\n'
        f'  to {builder.data_dir}\n'
        f'  in {seconds:.1f} s, {megabytes:.1f} MiB on disk, splits '
        f'{builder.builder_config.split_sizes}')


if __name__ == '__main__':
  app.run(main)
