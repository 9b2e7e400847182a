"""Sequence-to-sequence tasks `reverse` and `sort`.

The source is ℓ symbols, ℓ uniform in [min_len, max_len] (drawn per example
so accuracy can be reported by length), each symbol uniform over
num_symbols. The target is the source reversed (`reverse`) or sorted
ascending (`sort`), then EOS.

Tokens (shared by source and target, see vocab.py): 0 PAD, 1 BOS, 2 EOS,
data symbols 3 .. num_symbols + 2. Ts = max_len, Tt = max_len + 1.

Batch keys (n examples):
  source          int32   (n, Ts)  symbols, then PAD
  source_lengths  int32   (n,)     ℓ
  target          int32   (n, Tt)  output symbols, EOS, then PAD
  target_inputs   int32   (n, Tt)  BOS, then target shifted right by one
  target_mask     float32 (n, Tt)  1.0 on the ℓ output symbols and the EOS
  target_lengths  int32   (n,)     ℓ + 1 (EOS included)

Baseline: ln(num_symbols), the cross-entropy per output symbol of a model
that ignores the source.
"""

import math

import numpy as np

from attnlab.tasks import base
from attnlab.tasks.vocab import BOS, EOS, FIRST_SYMBOL, PAD

DEFAULTS = dict(min_len=1, max_len=20, num_symbols=10)


def resolve(p):
  max_len = base.check_int('max_len', p['max_len'], 1)
  return dict(
      min_len=base.check_int('min_len', p['min_len'], 1, max_len),
      max_len=max_len,
      num_symbols=base.check_int('num_symbols', p['num_symbols'], 1),
  )


def _spec(name):
  def spec(p):
    return base.TaskSpec(
        name=name, kind='seq2seq', output='step', input_kind='tokens',
        vocab_size=p['num_symbols'] + FIRST_SYMBOL, input_dim=None,
        num_outputs=p['num_symbols'] + FIRST_SYMBOL, seq_len=p['max_len'],
        target_len=p['max_len'] + 1, baseline=math.log(p['num_symbols']),
        baseline_name='cross-entropy per output symbol ignoring the source',
        params=dict(p))
  return spec


def _example(transform):
  def example(index, seed, p):
    rng = base.example_rng(seed, index)
    length = int(rng.integers(p['min_len'], p['max_len'] + 1))
    symbols = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + p['num_symbols'],
                           size=length)
    source = np.full(p['max_len'], PAD, np.int32)
    source[:length] = symbols
    target = np.full(p['max_len'] + 1, PAD, np.int32)
    target[:length] = transform(symbols)
    target[length] = EOS
    target_inputs = np.concatenate([[BOS], target[:-1]]).astype(np.int32)
    target_mask = (np.arange(target.size) <= length).astype(np.float32)
    return dict(source=source, source_lengths=np.int32(length),
                target=target, target_inputs=target_inputs,
                target_mask=target_mask, target_lengths=np.int32(length + 1))
  return example


# eval_score is per-token accuracy under teacher forcing (EOS included).
CRITERION = base.accuracy_criterion('output symbols (and EOS) under teacher forcing')
REVERSE = base.Task('reverse', DEFAULTS, resolve, _spec('reverse'),
                    _example(lambda symbols: symbols[::-1]), criterion=CRITERION)
SORT = base.Task('sort', DEFAULTS, resolve, _spec('sort'),
                 _example(np.sort), criterion=CRITERION)
