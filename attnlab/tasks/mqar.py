"""Multi-query associative recall `mqar` (Arora et al. 2023, "Zoology: measuring and improving
recall in efficient language models"; the multiquery_ar generator of its code).

P = num_pairs key-value pairs, then T - 2P steps in which Q = num_queries of the P keys come back;
at each of them the target is that key's value, and nothing else is scored. Keys are distinct,
drawn from [1, V/2), values distinct from [V/2, V) (V = vocab_size); each queried key comes once.
Query k sits at step 2P + 2 g_k, where the gaps g_k are distinct, drawn from 0..(T - 2P)/2 - 1
with probability proportional to (g + 1)^(power_a - 1) (Zoology's power law: power_a=0.01 puts
queries near the pairs, 1.0 spreads them uniformly, above 1 pushes them away). Every step of the
query region that is not a query holds a token drawn uniformly from [1, V) (Zoology's
random_non_queries), so queries are not marked.

  inputs : k_1 v_1 .. k_P v_P | x x k_a x x x k_b x ..    (x: random filler)
  targets:   0 ...        0   | 0 0 v_a 0 0 0 v_b 0 ..    (value classes; mask 1 at k_a, k_b, ..)

Zoology trains a language model (the label at a query is the next token); here the value is the
target at the query itself, which no later input repeats, so bidirectional models cannot see it.

Tokens: 0 PAD (reserved, unused), keys 1..V/2 - 1, values V/2..V - 1. Targets are value classes
0..V - V/2 - 1 (value token - V/2). num_queries=None queries every key (Zoology's choice).

Batch keys (n examples):
  inputs   int32   (n, T)
  targets  int32   (n, T)
  mask     float32 (n, T)  1.0 at the Q query steps only
  lengths  int32   (n,)    all T

Baseline: ln(V - V/2), a uniform guess over the values. A model that reads the P values but not
the query can reach ln P, which is lower.
Solved: eval_score, the accuracy over queries, >= 0.99.
"""

import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(seq_len=64, num_pairs=8, num_queries=None, vocab_size=256, power_a=0.01)


def resolve(p):
  vocab_size = base.check_int('vocab_size', p['vocab_size'], 4)
  num_pairs = base.check_int('num_pairs', p['num_pairs'], 1, vocab_size // 2 - 1)
  seq_len = base.check_int('seq_len', p['seq_len'], 2 * num_pairs + 1)
  space = (seq_len - 2 * num_pairs + 1) // 2  # query slots
  high = min(num_pairs, space)
  num_queries = p['num_queries']
  if num_queries is not None:
    num_queries = base.check_int('num_queries', num_queries, 1, high)
  elif num_pairs > space:
    raise ValueError(f'num_queries=None queries all {num_pairs} keys, but seq_len={seq_len} '
                     f'leaves {space} query slots after the pairs; expected seq_len >= '
                     f'{4 * num_pairs - 1} or num_queries <= {space}')
  return dict(seq_len=seq_len, num_pairs=num_pairs, num_queries=num_queries,
              vocab_size=vocab_size,
              power_a=base.check_float('power_a', p['power_a'], 0.0, math.inf))


def num_queries(p) -> int:
  """The number of queries: num_queries, or every key when it is None."""
  return p['num_pairs'] if p['num_queries'] is None else p['num_queries']


def spec(p):
  num_values = p['vocab_size'] - p['vocab_size'] // 2
  return base.TaskSpec(
      name='mqar', kind='classification', output='step', input_kind='tokens',
      vocab_size=p['vocab_size'], input_dim=None, num_outputs=num_values,
      seq_len=p['seq_len'], target_len=p['seq_len'], baseline=math.log(num_values),
      baseline_name='cross-entropy per query of a uniform guess over the values',
      params=dict(p))


def gap_probabilities(space: int, power_a: float) -> np.ndarray:
  """P(gap = g) for g = 0..space - 1: proportional to (g + 1)^(power_a - 1), as in Zoology."""
  weights = np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
  return weights / weights.sum()


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  steps, pairs, vocab = p['seq_len'], p['num_pairs'], p['vocab_size']
  first_value = vocab // 2
  keys = rng.choice(np.arange(1, first_value), size=pairs, replace=False)
  values = rng.choice(np.arange(first_value, vocab), size=pairs, replace=False)
  asked = rng.choice(pairs, size=num_queries(p), replace=False)
  space = (steps - 2 * pairs + 1) // 2
  gaps = rng.choice(space, size=asked.size, replace=False,
                    p=gap_probabilities(space, p['power_a']))
  inputs = rng.integers(1, vocab, size=steps).astype(np.int32)  # the filler
  inputs[0:2 * pairs:2], inputs[1:2 * pairs:2] = keys, values
  where = 2 * pairs + 2 * gaps
  inputs[where] = keys[asked]
  targets = np.zeros(steps, np.int32)
  targets[where] = values[asked] - first_value
  mask = np.zeros(steps, np.float32)
  mask[where] = 1.0
  return dict(inputs=inputs, targets=targets, mask=mask, lengths=np.int32(steps))


CRITERION = base.accuracy_criterion('the held-out queries answered')
TASK = base.Task('mqar', DEFAULTS, resolve, spec, example, criterion=CRITERION)
