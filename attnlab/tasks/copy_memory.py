"""Copy memory task `copy` (Arjovsky, Shah & Bengio 2016, "Unitary RNNs").

K = num_copy symbols, a delay of T = seq_len steps, L = T + 2K steps in all:

  inputs : s_1 .. s_K | blank x (T - 1) | delimiter | blank x K
  targets: blank x (T + K)                          | s_1 .. s_K

Tokens: 0 blank, 1..num_symbols the symbols (drawn uniformly, with
repeats), num_symbols + 1 the delimiter. Targets use classes 0..num_symbols.

Batch keys (n examples):
  inputs   int32   (n, L)
  targets  int32   (n, L)
  mask     float32 (n, L)  all ones: every step counts, as in the paper
  lengths  int32   (n,)    all L

Baseline: a memoryless model outputs blank for the first T + K steps and a
uniform guess for the last K, so its cross-entropy averaged over all steps
is K ln(num_symbols) / (T + 2K); 10 ln 8 / (T + 20) by default.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=100, num_symbols=8, num_copy=10)
BLANK = 0


def resolve(p):
  return dict(
      seq_len=base.check_int('seq_len', p['seq_len'], 1),
      num_symbols=base.check_int('num_symbols', p['num_symbols'], 1),
      num_copy=base.check_int('num_copy', p['num_copy'], 1),
  )


def spec(p):
  total = p['seq_len'] + 2 * p['num_copy']
  return base.TaskSpec(
      name='copy', kind='classification', output='step', input_kind='tokens',
      vocab_size=p['num_symbols'] + 2, input_dim=None,
      num_outputs=p['num_symbols'] + 1, seq_len=total, target_len=total,
      baseline=p['num_copy'] * math.log(p['num_symbols']) / total,
      baseline_name='cross-entropy per step of the memoryless predictor',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  delay, num_copy = p['seq_len'], p['num_copy']
  total = delay + 2 * num_copy
  symbols = rng.integers(1, p['num_symbols'] + 1, size=num_copy)
  inputs = np.full(total, BLANK, np.int32)
  inputs[:num_copy] = symbols
  inputs[num_copy + delay - 1] = p['num_symbols'] + 1  # delimiter
  targets = np.full(total, BLANK, np.int32)
  targets[-num_copy:] = symbols
  return dict(inputs=inputs, targets=targets,
              mask=np.ones(total, np.float32), lengths=np.int32(total))


CRITERION = base.accuracy_criterion('the copied symbols (blanks not counted)')
TASK = base.Task('copy', DEFAULTS, resolve, spec, example, criterion=CRITERION)
