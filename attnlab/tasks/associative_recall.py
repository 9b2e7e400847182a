"""Associative recall `associative_recall` (Ba et al. 2016, fast weights).

P = num_pairs key-value pairs, then a query marker and one of the P keys;
the target is the value paired with that key. Keys are distinct (drawn
without repeats from num_keys), values are drawn uniformly with repeats
from num_values, and the queried pair is uniform. L = 2P + 2 steps:

  inputs : k_1 v_1 k_2 v_2 .. k_P v_P ? k_q     target: v_q

Tokens: 0 PAD (reserved, unused), keys 1..num_keys, values
num_keys + 1 .. num_keys + num_values, query marker num_keys + num_values + 1.
Targets are value classes 0..num_values - 1 (token minus num_keys + 1).

Batch keys (n examples):
  inputs   int32   (n, L)
  targets  int32   (n,)
  mask     float32 (n,)  all ones
  lengths  int32   (n,)  all L

Baseline: ln(num_values). Values are uniform, so a model that ignores the
input can do no better; one that reads the values but not the query can
reach the log of the number of distinct values present, which is lower.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(num_pairs=8, num_keys=26, num_values=10)


def resolve(p):
  num_keys = base.check_int('num_keys', p['num_keys'], 1)
  return dict(
      num_pairs=base.check_int('num_pairs', p['num_pairs'], 1, num_keys),
      num_keys=num_keys,
      num_values=base.check_int('num_values', p['num_values'], 1),
  )


def spec(p):
  return base.TaskSpec(
      name='associative_recall', kind='classification', output='sequence',
      input_kind='tokens', vocab_size=p['num_keys'] + p['num_values'] + 2,
      input_dim=None, num_outputs=p['num_values'],
      seq_len=2 * p['num_pairs'] + 2, target_len=None,
      baseline=math.log(p['num_values']),
      baseline_name='cross-entropy of the memoryless (uniform) predictor',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  num_pairs, num_keys = p['num_pairs'], p['num_keys']
  keys = rng.choice(num_keys, size=num_pairs, replace=False) + 1
  values = rng.integers(0, p['num_values'], size=num_pairs)
  query = rng.integers(0, num_pairs)
  inputs = np.empty(2 * num_pairs + 2, np.int32)
  inputs[0:-2:2] = keys
  inputs[1:-2:2] = values + num_keys + 1
  inputs[-2] = num_keys + p['num_values'] + 1  # query marker
  inputs[-1] = keys[query]
  return dict(inputs=inputs, targets=np.int32(values[query]),
              mask=np.float32(1.0), lengths=np.int32(inputs.size))


CRITERION = base.accuracy_criterion('held-out queries answered')
TASK = base.Task('associative_recall', DEFAULTS, resolve, spec, example,
                 criterion=CRITERION)
