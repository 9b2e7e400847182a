"""Building blocks shared by the task modules: TaskSpec, Criterion, Task, checks, rng.

Every example is drawn from its own generator `example_rng(seed, index)`, so
example i of a task is the same whichever batch or call produces it.
"""

import dataclasses
import math
from typing import Any, Callable, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """What a model and its metrics need to know about a task.

  Attributes:
    name: task name, one of attnlab.tasks.TASKS.
    kind: 'classification', 'regression' or 'seq2seq'.
    output: 'sequence' (one target per example) or 'step' (a target per step).
    input_kind: 'tokens' (int32 ids) or 'real' (float32 channels).
    vocab_size: input vocabulary size incl. special tokens; None for real inputs.
    input_dim: channels of real inputs; None for tokens.
    num_outputs: number of target classes; 1 for regression.
    seq_len: padded input length (source length for seq2seq).
    target_len: length of the target sequence for 'step' tasks, else None.
    baseline: loss of the memoryless predictor (see baseline_name).
    baseline_name: what `baseline` measures.
    params: the resolved task parameters.
  """
  name: str
  kind: str
  output: str
  input_kind: str
  vocab_size: Optional[int]
  input_dim: Optional[int]
  num_outputs: int
  seq_len: int
  target_len: Optional[int]
  baseline: float
  baseline_name: str
  params: dict


@dataclasses.dataclass(frozen=True)
class Criterion:
  """When a run counts as having solved a task, judged on one evaluation's metrics.

  Attributes:
    metric: the evaluation metric it reads, e.g. 'eval_score'.
    threshold: solved when metrics[metric] >= threshold.
    description: what that means per held-out sequence, in words.
  """
  metric: str
  threshold: float
  description: str

  def met(self, metrics: dict) -> bool:
    """metrics[metric] >= threshold; False when the metric is missing or NaN."""
    value = metrics.get(self.metric)
    if value is None:
      return False
    value = float(value)
    return not math.isnan(value) and value >= self.threshold


# Solved = at most 1% of held-out sequences (or scored symbols) wrong.
SOLVED_FRACTION = 0.99


def accuracy_criterion(what: str) -> Criterion:
  """eval_score (the accuracy on `what`) >= SOLVED_FRACTION."""
  return Criterion('eval_score', SOLVED_FRACTION,
                   f'eval_score >= {SOLVED_FRACTION}: at least {SOLVED_FRACTION:.0%} of {what} '
                   'correct')


def _no_size(params):
  del params
  return None


@dataclasses.dataclass(frozen=True)
class Task:
  """How to build one task.

  Attributes:
    name: task name.
    defaults: every accepted parameter with its default value.
    resolve: checks a full parameter dict and returns the resolved one;
      raises ValueError naming the bad parameter.
    spec: resolved params -> TaskSpec.
    example: (index, seed, resolved params) -> dict of unbatched arrays.
    size: resolved params -> number of examples, or None when unlimited.
    criterion: when a run has solved the task (see Criterion), or a function of the resolved
      params that returns it (a task whose variants differ in it).
    added: parameters added after datasets were prepared, with the value that keeps the old
      examples; a prepared dataset's name leaves out a parameter that has that value.
  """
  name: str
  defaults: dict
  resolve: Callable[[dict], dict]
  spec: Callable[[dict], TaskSpec]
  example: Callable[[int, int, dict], dict]
  size: Callable[[dict], Optional[int]] = _no_size
  criterion: Any = None
  added: dict = dataclasses.field(default_factory=dict)


def example_rng(seed: int, index: int) -> np.random.Generator:
  """The generator that example `index` of a task is drawn from."""
  return np.random.default_rng([seed, index])


def check_int(name: str, value: Any, low: int, high: Optional[int] = None) -> int:
  """Returns `value` as int; ValueError naming it unless it is in [low, high]."""
  valid = f'an integer >= {low}' if high is None else f'an integer in [{low}, {high}]'
  is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
  if not is_int or value < low or (high is not None and value > high):
    raise ValueError(f'{name}={value!r} is invalid; expected {valid}')
  return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
  """Returns `value` as float; ValueError naming it unless it is a number in [low, high]."""
  is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
      value, (bool, np.bool_))
  if not is_number or not low <= value <= high:
    raise ValueError(f'{name}={value!r} is invalid; expected a number in [{low}, {high}]')
  return float(value)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
  """Returns `value`; ValueError naming it unless it is one of `choices`."""
  if not any(type(value) is type(c) and value == c for c in choices):
    raise ValueError(f'{name}={value!r} is invalid; expected one of {choices}')
  return value
