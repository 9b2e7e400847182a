"""Parity `parity` (the parity check of Delétang et al. 2023, "Neural networks and the Chomsky
hierarchy": a regular language, where LSTMs generalise to longer strings and Transformers do not).

A string of L uniform random bits, L = seq_len, or with min_len set L uniform in min_len..seq_len
per example (padded to seq_len: `lengths` gives L). variant='final': one label, the parity (sum
mod 2) of all L bits. variant='running': a label at every step t < L, the parity of bits 1..t.
The paper trains on lengths uniform in 1..40 (seq_len=40, min_len=1) and tests on each length
41..500 on its own (seq_len = min_len = that length).

Tokens: 0 PAD (reserved, unused), 1 bit 0, 2 bit 1 (bit + 1). Classes: 0 even, 1 odd.

Batch keys (n examples):
  inputs   int32   (n, T)         T = seq_len; 0 (PAD) from step L on
  targets  int32   (n,) final, (n, T) running (0 past L)
  mask     float32 (n,) final: ones; (n, T) running: 1 on the L valid steps
  lengths  int32   (n,)  L

Baseline: ln 2, the cross-entropy of a uniform guess (chance accuracy 0.5). Every label is a fair
coin given all bits but one of its prefix, so a model that misses any bit can do no better.
Solved: eval_score (accuracy over sequences, or over steps for 'running') >= 0.99.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=20, variant='running', min_len=None)
VARIANTS = ('final', 'running')
FIRST_BIT = 1  # token of bit 0; bit 1 is FIRST_BIT + 1


def resolve(p):
  seq_len = base.check_int('seq_len', p['seq_len'], 1)
  min_len = p.get('min_len')
  if min_len is not None:
    min_len = base.check_int('min_len', min_len, 1, seq_len)
  return dict(seq_len=seq_len, variant=base.check_choice('variant', p['variant'], VARIANTS),
              min_len=min_len)


def length_of(rng, p) -> int:
  """L: seq_len, or uniform in min_len..seq_len when min_len is set."""
  if p['min_len'] is None:
    return p['seq_len']
  return int(rng.integers(p['min_len'], p['seq_len'] + 1))


def spec(p):
  running = p['variant'] == 'running'
  return base.TaskSpec(
      name='parity', kind='classification', output='step' if running else 'sequence',
      input_kind='tokens', vocab_size=FIRST_BIT + 2, input_dim=None, num_outputs=2,
      seq_len=p['seq_len'], target_len=p['seq_len'] if running else None,
      baseline=math.log(2), baseline_name='cross-entropy of a uniform guess (chance accuracy 0.5)',
      params=dict(p))


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  steps, length = p['seq_len'], length_of(rng, p)
  bits = rng.integers(0, 2, size=length)
  running = np.cumsum(bits) % 2
  inputs = np.zeros(steps, np.int32)  # PAD after the string
  inputs[:length] = bits + FIRST_BIT
  if p['variant'] == 'running':
    targets, mask = np.zeros(steps, np.int32), np.zeros(steps, np.float32)
    targets[:length], mask[:length] = running, 1.0
  else:
    targets, mask = np.int32(running[-1]), np.float32(1.0)
  return dict(inputs=inputs, targets=targets, mask=mask, lengths=np.int32(length))


CRITERION = base.accuracy_criterion('held-out parities (sequences, or steps when running)')
TASK = base.Task('parity', DEFAULTS, resolve, spec, example, criterion=CRITERION)
