"""Synthetic long-range tasks (pure NumPy) and a small real one.

Example i of a task is drawn only from np.random.default_rng([seed, i]) and
the task parameters, so `generate(name, n, seed, start=k)` returns examples
k .. k + n - 1 and equals the concatenation of smaller calls. Each task
module's docstring gives its token layout, batch keys, shapes and baseline.

  generate(name, n, seed=0, start=0, **params) -> dict of batched arrays
  example(name, index, seed=0, **params)       -> dict of one example
  examples(name, indices, seed=0, **params)    -> list of example dicts
  spec(name, **params)                         -> TaskSpec
  num_examples(name, **params)                 -> int, or None if unlimited
  criterion(name, **params)                    -> Criterion: when a run has
                                                  solved the task
  added_params(name)                           -> {param: value that keeps the
                                                  examples of before it existed}
"""

import operator

import numpy as np

from attnlab.tasks import adding as _adding
from attnlab.tasks import associative_recall as _associative_recall
from attnlab.tasks import copy_memory as _copy_memory
from attnlab.tasks import digits as _digits
from attnlab.tasks import flip_flop as _flip_flop
from attnlab.tasks import listops as _listops
from attnlab.tasks import mqar as _mqar
from attnlab.tasks import parity as _parity
from attnlab.tasks import selective_copy as _selective_copy
from attnlab.tasks import seq2seq as _seq2seq
from attnlab.tasks import temporal_order as _temporal_order
from attnlab.tasks.adding import ADDING_TOLERANCE
from attnlab.tasks.base import Criterion, Task, TaskSpec, check_int
from attnlab.tasks.metrics import adding_solved

_REGISTRY = {task.name: task for task in (
    _copy_memory.TASK,
    _adding.TASK,
    _selective_copy.TASK,
    _associative_recall.TASK,
    _temporal_order.TASK,
    _listops.TASK,
    _seq2seq.REVERSE,
    _seq2seq.SORT,
    _digits.TASK,
    _parity.TASK,
    _flip_flop.TASK,
    _mqar.TASK,
)}
TASKS = tuple(_REGISTRY)


def _resolve(name, params):
  """(Task, resolved params); ValueError on a bad name or parameter."""
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f'unknown task {name!r}; valid tasks: {", ".join(TASKS)}')
  task = _REGISTRY[name]
  unknown = sorted(set(params) - set(task.defaults))
  if unknown:
    raise ValueError(f'unknown parameter(s) {", ".join(unknown)} for task '
                     f'{name!r}; valid parameters: {", ".join(task.defaults)}')
  return task, task.resolve({**task.defaults, **params})


def task_object(name: str) -> Task:
  """The Task of `name` (its defaults, generator and criterion); ValueError on an unknown name."""
  return _resolve(name, {})[0]


def spec(name: str, **params) -> TaskSpec:
  """The TaskSpec of task `name` with `params` (defaults filled in)."""
  task, resolved = _resolve(name, params)
  return task.spec(resolved)


def criterion(name: str, **params) -> Criterion:
  """When a run has solved task `name` (see the task module's CRITERION)."""
  task, resolved = _resolve(name, params)
  return task.criterion(resolved) if callable(task.criterion) else task.criterion


def added_params(name: str) -> dict:
  """Parameters of task `name` added after datasets were prepared, with their old value."""
  task, _ = _resolve(name, {})
  return dict(task.added)


def num_examples(name: str, **params):
  """How many examples the task has: None for the unlimited synthetic ones."""
  task, resolved = _resolve(name, params)
  return task.size(resolved)


def example(name: str, index: int, seed: int = 0, **params) -> dict:
  """Example `index` of a task, unbatched (see the task module for keys)."""
  task, resolved = _resolve(name, params)
  seed = check_int('seed', seed, 0)
  size = task.size(resolved)
  high = None if size is None else size - 1
  index = check_int('index', index, 0, high)
  return task.example(index, seed, resolved)


def examples(name: str, indices, seed: int = 0, **params) -> list:
  """Examples `indices` of a task, unbatched; checks the arguments once.

  Equals [example(name, i, seed, **params) for i in indices], without the
  per-example argument checks (what a loader reading a batch calls).
  """
  task, resolved = _resolve(name, params)
  seed = check_int('seed', seed, 0)
  indices = [operator.index(i) for i in indices]
  if indices:
    size = task.size(resolved)
    high = None if size is None else size - 1
    check_int('index', min(indices), 0, high)
    check_int('index', max(indices), 0, high)
  return [task.example(i, seed, resolved) for i in indices]


def generate(name: str, n: int, seed: int = 0, start: int = 0,
             **params) -> dict:
  """Examples start .. start + n - 1 of a task, stacked along a first axis n."""
  task, resolved = _resolve(name, params)
  seed = check_int('seed', seed, 0)
  n = check_int('n', n, 0)
  start = check_int('start', start, 0)
  size = task.size(resolved)
  if size is not None and start + n > size:
    raise ValueError(f'start + n = {start + n} exceeds the {size} examples of '
                     f'task {name!r} with {resolved}')
  if n == 0:  # stack one example for the shapes, keep none of it
    return {key: value[:0] for key, value in
            stack_examples([task.example(0, seed, resolved)]).items()}
  return stack_examples([task.example(start + i, seed, resolved) for i in range(n)])


def stack_examples(examples) -> dict:
  """Example dicts stacked along a new axis 0; str values become object arrays."""
  batch = {}
  for key, first in examples[0].items():
    values = [ex[key] for ex in examples]
    if isinstance(first, str):
      batch[key] = np.array(values, dtype=object)
    else:
      batch[key] = np.stack(values)
  return batch


__all__ = ['ADDING_TOLERANCE', 'Criterion', 'TASKS', 'Task', 'TaskSpec',
           'adding_solved', 'added_params', 'criterion', 'example',
           'examples', 'generate', 'num_examples', 'spec', 'stack_examples', 'task_object']
