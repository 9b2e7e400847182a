"""Temporal order `temporal_order` (Hochreiter & Schmidhuber 1997, task 6a).

A sequence of T = seq_len steps starts with E and ends with B; the steps in
between are noise symbols a, b, c, d except two relevant steps t1 < t2 that
each hold X or Y. The class is the order: XX, XY, YX or YY.

The paper used T in [100, 110], t1 in [10, 20] and t2 in [50, 60]. Here T
is fixed and the windows scale with it: t1 uniform in [T // 10, T // 5],
t2 uniform in [T // 2, 3T // 5], which is the paper's setting for T = 100.

Tokens: 0 PAD (reserved, unused), 1..4 = a b c d, 5 X, 6 Y, 7 E (start),
8 B (end). Classes: 0 XX, 1 XY, 2 YX, 3 YY, i.e. 2 [first is Y] + [second is Y].

Batch keys (n examples):
  inputs   int32   (n, T)
  targets  int32   (n,)
  mask     float32 (n,)  all ones
  lengths  int32   (n,)  all T

Baseline: ln 4, the cross-entropy of a uniform guess (classes are uniform).
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=100)
NOISE = (1, 2, 3, 4)
X, Y, START, END = 5, 6, 7, 8
CLASSES = ('XX', 'XY', 'YX', 'YY')


def resolve(p):
  return dict(seq_len=base.check_int('seq_len', p['seq_len'], 10))


def spec(p):
  return base.TaskSpec(
      name='temporal_order', kind='classification', output='sequence',
      input_kind='tokens', vocab_size=9, input_dim=None, num_outputs=4,
      seq_len=p['seq_len'], target_len=None, baseline=math.log(4),
      baseline_name='cross-entropy of a uniform guess over 4 classes',
      params=dict(p))


def relevant_steps(seq_len):
  """The inclusive windows ((lo1, hi1), (lo2, hi2)) that hold t1 and t2."""
  return (seq_len // 10, seq_len // 5), (seq_len // 2, 3 * seq_len // 5)


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  steps = p['seq_len']
  (lo1, hi1), (lo2, hi2) = relevant_steps(steps)
  inputs = rng.integers(NOISE[0], NOISE[-1] + 1, size=steps).astype(np.int32)
  inputs[0], inputs[-1] = START, END
  first_is_y, second_is_y = rng.integers(0, 2, size=2)
  inputs[rng.integers(lo1, hi1 + 1)] = Y if first_is_y else X
  inputs[rng.integers(lo2, hi2 + 1)] = Y if second_is_y else X
  return dict(inputs=inputs, targets=np.int32(2 * first_is_y + second_is_y),
              mask=np.float32(1.0), lengths=np.int32(steps))


CRITERION = base.accuracy_criterion('held-out sequences classified')
TASK = base.Task('temporal_order', DEFAULTS, resolve, spec, example,
                 criterion=CRITERION)
