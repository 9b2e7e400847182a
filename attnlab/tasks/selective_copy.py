"""Selective copying `selective_copy` (Gu & Dao 2023, Mamba, section 3.1).

K = num_copy symbols are scattered at random distinct positions of a region
of T = seq_len steps, the rest blank; then comes a delimiter and K blank
steps, during which the model must output the symbols in their order.
L = T + 1 + K steps in all:

  inputs : blanks with s_1 .. s_K scattered (T) | delimiter | blank x K
  targets: blank x (T + 1)                                  | s_1 .. s_K

Tokens: 0 blank, 1..num_symbols the symbols (uniform, with repeats),
num_symbols + 1 the delimiter. Targets use classes 0..num_symbols.

Batch keys (n examples):
  inputs   int32   (n, L)
  targets  int32   (n, L)
  mask     float32 (n, L)  1.0 on the last K steps only
  lengths  int32   (n,)    all L

Baseline: ln(num_symbols), the cross-entropy per scored step of a uniform
guess.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=256, num_symbols=8, num_copy=16)
BLANK = 0


def resolve(p):
  seq_len = base.check_int('seq_len', p['seq_len'], 1)
  return dict(
      seq_len=seq_len,
      num_symbols=base.check_int('num_symbols', p['num_symbols'], 1),
      num_copy=base.check_int('num_copy', p['num_copy'], 1, seq_len),
  )


def spec(p):
  total = p['seq_len'] + 1 + p['num_copy']
  return base.TaskSpec(
      name='selective_copy', kind='classification', output='step',
      input_kind='tokens', vocab_size=p['num_symbols'] + 2, input_dim=None,
      num_outputs=p['num_symbols'] + 1, seq_len=total, target_len=total,
      baseline=math.log(p['num_symbols']),
      baseline_name='cross-entropy per scored step of a uniform guess',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  region, num_copy = p['seq_len'], p['num_copy']
  total = region + 1 + num_copy
  symbols = rng.integers(1, p['num_symbols'] + 1, size=num_copy)
  positions = np.sort(rng.choice(region, size=num_copy, replace=False))
  inputs = np.full(total, BLANK, np.int32)
  inputs[positions] = symbols
  inputs[region] = p['num_symbols'] + 1  # delimiter
  targets = np.full(total, BLANK, np.int32)
  targets[-num_copy:] = symbols
  mask = np.zeros(total, np.float32)
  mask[-num_copy:] = 1.0
  return dict(inputs=inputs, targets=targets, mask=mask,
              lengths=np.int32(total))


CRITERION = base.accuracy_criterion('the scored output symbols')
TASK = base.Task('selective_copy', DEFAULTS, resolve, spec, example,
                 criterion=CRITERION)
