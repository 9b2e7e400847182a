"""Parity `parity` (the parity check of Delétang et al. 2023, "Neural networks and the Chomsky
hierarchy": a regular language, where LSTMs generalise to longer strings and Transformers do not).

A string of T = seq_len uniform random bits. variant='final': one label, the parity (sum mod 2)
of all T bits. variant='running': a label at every step t, the parity of bits 1..t. The paper
trains on lengths up to 40 and tests up to 500; here T is fixed, and longer strings are
evaluated with config.eval_lengths (each length its own seq_len).

Tokens: 0 PAD (reserved, unused), 1 bit 0, 2 bit 1 (bit + 1). Classes: 0 even, 1 odd.

Batch keys (n examples):
  inputs   int32   (n, T)
  targets  int32   (n,) final, (n, T) running
  mask     float32 (n,) final, (n, T) running: all ones
  lengths  int32   (n,)  all T

Baseline: ln 2, the cross-entropy of a uniform guess (chance accuracy 0.5). Every label is a fair
coin given all bits but one of its prefix, so a model that misses any bit can do no better.
Solved: eval_score (accuracy over sequences, or over steps for 'running') >= 0.99.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=20, variant='running')
VARIANTS = ('final', 'running')
FIRST_BIT = 1  # token of bit 0; bit 1 is FIRST_BIT + 1


def resolve(p):
  return dict(seq_len=base.check_int('seq_len', p['seq_len'], 1),
              variant=base.check_choice('variant', p['variant'], VARIANTS))


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
  steps = p['seq_len']
  bits = rng.integers(0, 2, size=steps)
  running = np.cumsum(bits) % 2
  if p['variant'] == 'running':
    targets, mask = running.astype(np.int32), np.ones(steps, np.float32)
  else:
    targets, mask = np.int32(running[-1]), np.float32(1.0)
  return dict(inputs=(bits + FIRST_BIT).astype(np.int32), targets=targets, mask=mask,
              lengths=np.int32(steps))


CRITERION = base.accuracy_criterion('held-out parities (sequences, or steps when running)')
TASK = base.Task('parity', DEFAULTS, resolve, spec, example, criterion=CRITERION)
