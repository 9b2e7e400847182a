"""Adding problem `adding` (Hochreiter & Schmidhuber 1997, experiment 4).

Each of the T = seq_len steps has two channels: a value drawn from U(0, 1)
and a marker that is 1 at exactly two steps and 0 elsewhere. The first
marked step is uniform in [0, T // 2), the second uniform in [T // 2, T)
(the common variant of Le et al. 2015 / Arjovsky et al. 2016; the 1997
paper used values in [-1, 1] and put the first marker among the first ten
steps). The target is the sum of the two marked values.

Batch keys (n examples):
  inputs   float32 (n, T, 2)  channel 0 values, channel 1 markers
  targets  float32 (n,)       sum of the two marked values, in [0, 2)
  mask     float32 (n,)       all ones
  lengths  int32   (n,)       all T

Baseline: predicting the mean 1.0 gives MSE Var(u1 + u2) = 2/12 = 1/6
(about 0.1667).

Solved: a sequence is right when |error| < ADDING_TOLERANCE = 0.08, the
1997 paper's tolerance on this target's scale. The paper's values X are in
[-1, 1] and its target is 0.5 + (X1 + X2) / 4, judged with |error| < 0.04.
With X = 2u - 1 for u in [0, 1], that target is 0.5 + (2 y - 2) / 4 = y / 2
for attnlab's target y = u1 + u2, so an error of 0.04 on the paper's target
is an error of 0.08 on y (equally: 0.04 is 1/25 of the paper's target range
1, and 0.08 is 1/25 of y's range 2). eval_score is the fraction of
sequences within the tolerance; a run has solved the task when eval_score
>= 0.99 (CRITERION).
"""

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=100)
HOCHREITER_TOLERANCE = 0.04  # on the paper's target 0.5 + (X1 + X2) / 4
ADDING_TOLERANCE = 0.08  # the same on the target u1 + u2 = 2 x the paper's target
CRITERION = base.Criterion(
    'eval_score', base.SOLVED_FRACTION,
    f'eval_score >= {base.SOLVED_FRACTION}: at least {base.SOLVED_FRACTION:.0%} of held-out '
    f'sequences within |error| < {ADDING_TOLERANCE} (Hochreiter & Schmidhuber\'s '
    f'{HOCHREITER_TOLERANCE} on their [0, 1] target scale)')


def resolve(p):
  return dict(seq_len=base.check_int('seq_len', p['seq_len'], 2))


def spec(p):
  return base.TaskSpec(
      name='adding', kind='regression', output='sequence', input_kind='real',
      vocab_size=None, input_dim=2, num_outputs=1, seq_len=p['seq_len'],
      target_len=None, baseline=1.0 / 6.0,
      baseline_name='MSE of always predicting the mean sum 1.0',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  steps = p['seq_len']
  values = rng.random(steps, dtype=np.float32)
  first = rng.integers(0, steps // 2)
  second = rng.integers(steps // 2, steps)
  markers = np.zeros(steps, np.float32)
  markers[[first, second]] = 1.0
  return dict(inputs=np.stack([values, markers], axis=-1),
              targets=values[first] + values[second],
              mask=np.float32(1.0), lengths=np.int32(steps))


TASK = base.Task('adding', DEFAULTS, resolve, spec, example, criterion=CRITERION)
