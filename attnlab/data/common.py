"""Shared by builders, sources and pipeline: splits, data_dir, argument checks.

Splits of a generated task. Every split of a task with a given seed is a
range of example indices of `attnlab.tasks` with that same seed:

  train       indices [0, 2**61)
  validation  indices [2**61, 2 * 2**61)
  test        indices [2 * 2**61, 3 * 2**61)

so the splits are disjoint, and example i of a split does not depend on the
size of any split: a prepared train split of n examples is exactly the first
n examples of the unlimited generated train stream (example i of `train` is
`attnlab.tasks.example(task, i, seed, **params)`).

Finite tasks (`digits`) have their own split parameter instead; their
splits are read as they are (see `task_split`).
"""

import os
from typing import Any, Optional

from attnlab import tasks
from attnlab.tasks.base import check_int

SPLITS = ('train', 'validation', 'test')
UNLIMITED = 2**61  # examples in each split of an unlimited task
MAX_SEED = 2**32 - 1  # grain shuffles with 32-bit seeds
DATA_DIR_ENV = 'ATTNLAB_DATA_DIR'


def check_split(split: Any) -> str:
  """Returns `split`; ValueError naming it unless it is one of SPLITS."""
  if split not in SPLITS:
    raise ValueError(f'split={split!r} is invalid; expected one of {SPLITS}')
  return split


def check_seed(seed: Any) -> int:
  """Returns `seed` as int; ValueError unless it is in [0, 2**32 - 1]."""
  return check_int('seed', seed, 0, MAX_SEED)


def split_start(split: str) -> int:
  """Index of the first example of `split` in a generated task's stream."""
  return SPLITS.index(check_split(split)) * UNLIMITED


def task_split(task: str, params: Optional[dict], split: str):
  """(resolved params, first index, number of examples) of a task's split.

  Unlimited tasks: the index range above, UNLIMITED examples. Finite tasks
  (digits) select their split with their own `split` parameter and index
  from 0; ValueError if they lack that split or `params` names another one.
  """
  params = dict(params or {})
  check_split(split)
  resolved = tasks.spec(task, **params).params  # ValueError on a bad task
  size = tasks.num_examples(task, **params)
  if size is None:
    return resolved, split_start(split), UNLIMITED
  if 'split' not in resolved:
    return resolved, 0, size
  if 'split' in params and params['split'] != split:
    raise ValueError(f'params split={params["split"]!r} contradicts '
                     f'split={split!r} for task {task!r}')
  try:
    params['split'] = split
    return (tasks.spec(task, **params).params, 0,
            tasks.num_examples(task, **params))
  except ValueError as error:
    raise ValueError(f'task {task!r} has no split {split!r}: {error}') from None


def data_dir(path: Optional[str] = None) -> str:
  """`path`, else $ATTNLAB_DATA_DIR, else ~/tensorflow_datasets (absolute)."""
  path = path or os.environ.get(DATA_DIR_ENV) or '~/tensorflow_datasets'
  return os.path.abspath(os.path.expanduser(os.fspath(path)))
