"""ListOps `listops` (Nangia & Bowman 2018; Long Range Arena, Tay et al. 2020).

A random expression tree over the digits 0..9 with operators MIN, MAX, MED
(median) and SM (sum mod 10), written in LRA's notation, e.g.

  [MAX 2 9 [MIN 4 7 ] 0 ]      (label 9)

MED is int(np.median(args)) as in LRA: for an even count the two middle
values are averaged and truncated, i.e. (lo + hi) // 2.

Tree shape (like LRA): the root is at depth 1; operators may sit at depths
1..max_depth - 1 and leaves at any depth up to max_depth, so brackets nest
at most max_depth - 1 deep; each operator has 2..max_args arguments
(uniform); operators and digits are uniform. Examples are kept only if their
token count lies in [min_len, max_len] (inclusive).

Sampler: LRA grows trees with operator probability 0.25 and rejects those
outside the range, which almost never accepts at lengths 500..2000. Here
the root is always an operator and every deeper node is one with a fixed
probability p, chosen by bisection so that the expected token count equals
the geometric mean of min_len and max_len; about a third of the trees then
land in the default range. Shapes are drawn level by level with NumPy and
rejected (cheaply, before any digit is drawn, and as soon as they grow past
max_len); the accepted tree is evaluated and written out level by level too.

Tokens: 0 PAD, 1..10 the digits 0..9 (digit + 1), 11 [MIN, 12 [MAX,
13 [MED, 14 [SM, 15 ].

Batch keys (n examples):
  inputs   int32   (n, seq_len)  tokens, then PAD (seq_len defaults to max_len)
  targets  int32   (n,)          value of the expression, 0..9
  mask     float32 (n,)          all ones
  lengths  int32   (n,)          number of tokens
  source   object  (n,)          the expression text (str)

Baseline: ln 10, the cross-entropy of a uniform guess. Labels are not
uniform (MAX leans to 9, MIN to 0), so the best constant guess does a bit
better.
"""

import functools
import math

import numpy as np

from attnlab.tasks import base

DEFAULTS = dict(min_len=500, max_len=2000, max_depth=10, max_args=10,
                seq_len=None)
OPERATORS = ('[MIN', '[MAX', '[MED', '[SM')
DIGIT_OFFSET = 1
OPERATOR_OFFSET = 11
CLOSE = 15
WORDS = np.array(['<pad>'] + [str(d) for d in range(10)] + list(OPERATORS)
                 + [']'], dtype=object)
MAX_TRIES = 10_000


def max_length(max_depth, max_args):
  """The most tokens a tree with these limits can have."""
  length = 1
  for _ in range(max_depth - 1):
    length = 2 + max_args * length
  return length


def resolve(p):
  max_depth = base.check_int('max_depth', p['max_depth'], 2)
  max_args = base.check_int('max_args', p['max_args'], 2)
  reachable = max_length(max_depth, max_args)
  max_len = base.check_int('max_len', p['max_len'], 4)
  min_len = base.check_int('min_len', p['min_len'], 1, min(max_len, reachable))
  seq_len = max_len if p['seq_len'] is None else p['seq_len']
  return dict(min_len=min_len, max_len=max_len, max_depth=max_depth,
              max_args=max_args,
              seq_len=base.check_int('seq_len', seq_len, max_len))


def spec(p):
  return base.TaskSpec(
      name='listops', kind='classification', output='sequence',
      input_kind='tokens', vocab_size=len(WORDS), input_dim=None,
      num_outputs=10, seq_len=p['seq_len'], target_len=None,
      baseline=math.log(10),
      baseline_name='cross-entropy of a uniform guess over 10 classes',
      params=dict(p))


def _expected_length(op_prob, max_depth, max_args):
  mean_args = (2 + max_args) / 2
  total, nodes = 0.0, 1.0
  for depth in range(1, max_depth + 1):
    is_op = 1.0 if depth == 1 else (op_prob if depth < max_depth else 0.0)
    total += nodes * (1 + is_op)  # a leaf is 1 token, an operator 2
    nodes *= is_op * mean_args
  return total


@functools.lru_cache(maxsize=None)
def operator_probability(min_len, max_len, max_depth, max_args):
  """p whose expected tree length is sqrt(min_len * max_len) (or 1 if none)."""
  target = math.sqrt(min_len * max_len)
  lo, hi = 0.0, 1.0
  for _ in range(50):
    mid = (lo + hi) / 2
    if _expected_length(mid, max_depth, max_args) < target:
      lo = mid
    else:
      hi = mid
  return hi


def _sample_shape(rng, p, op_prob):
  """Per depth: (is_op bool (nodes,), num_args int (ops,)); None if rejected."""
  levels, nodes, length = [], 1, 0
  for depth in range(1, p['max_depth'] + 1):
    if depth == 1:
      is_op = np.ones(1, bool)
    elif depth == p['max_depth']:
      is_op = np.zeros(nodes, bool)
    else:
      is_op = rng.random(nodes) < op_prob
    num_args = rng.integers(2, p['max_args'] + 1, size=int(is_op.sum()))
    levels.append((is_op, num_args))
    length += nodes + num_args.size
    nodes = int(num_args.sum())
    if length + nodes > p['max_len']:
      return None
    if nodes == 0:
      break
  return levels if length >= p['min_len'] else None


def _apply(operators, args, first, num_args, group):
  """Value of each operator node from its args, grouped in order by `group`."""
  ordered = np.sort(group * 10 + args) - group * 10  # args sorted per group
  lo = ordered[first + (num_args - 1) // 2]
  hi = ordered[first + num_args // 2]
  return np.choose(operators, (
      ordered[first],                       # MIN
      ordered[first + num_args - 1],        # MAX
      (lo + hi) // 2,                       # MED, int(np.median(args))
      np.add.reduceat(args, first) % 10,    # SM
  ))


def _write_tree(rng, levels):
  """Draws operators and digits; returns (tokens int32 (length,), label).

  Nodes are stored level by level; the children of the j-th operator of a
  level are a contiguous run of the next level, in order.
  """
  num_ops = np.array([num_args.size for _, num_args in levels])
  num_leaves = np.array([is_op.size for is_op, _ in levels]) - num_ops
  operators = np.split(rng.integers(0, len(OPERATORS), size=num_ops.sum()),
                       np.cumsum(num_ops)[:-1])
  digits = np.split(rng.integers(0, 10, size=num_leaves.sum()),
                    np.cumsum(num_leaves)[:-1])
  # For each operator: index of its first child, and each child's parent.
  firsts = [np.cumsum(num_args) - num_args for _, num_args in levels]
  groups = [np.repeat(np.arange(num_args.size), num_args)
            for _, num_args in levels]

  # Bottom up: the value and token count of every node.
  values, sizes = [None] * len(levels), [None] * len(levels)
  for depth in reversed(range(len(levels))):
    is_op, num_args = levels[depth]
    values[depth] = np.empty(is_op.size, np.int64)
    sizes[depth] = np.ones(is_op.size, np.int64)
    values[depth][~is_op] = digits[depth]
    if num_args.size:
      sizes[depth][is_op] = 2 + np.add.reduceat(sizes[depth + 1], firsts[depth])
      values[depth][is_op] = _apply(operators[depth], values[depth + 1],
                                    firsts[depth], num_args, groups[depth])

  # Top down: where each node's tokens start, then write them.
  tokens = np.empty(sizes[0][0], np.int32)
  starts = np.zeros(1, np.int64)
  for depth, (is_op, num_args) in enumerate(levels):
    tokens[starts[~is_op]] = digits[depth] + DIGIT_OFFSET
    op_starts = starts[is_op]
    tokens[op_starts] = operators[depth] + OPERATOR_OFFSET
    tokens[op_starts + sizes[depth][is_op] - 1] = CLOSE
    if num_args.size:
      child_sizes = sizes[depth + 1]
      before = np.cumsum(child_sizes) - child_sizes  # tokens before each child
      group = groups[depth]
      offset = before - before[firsts[depth]][group]  # ... within its parent
      starts = op_starts[group] + 1 + offset
  return tokens, int(values[0][0])


def to_text(tokens):
  """LRA text of a token array (PAD tokens dropped)."""
  tokens = np.asarray(tokens)
  return ' '.join(WORDS[tokens[tokens != 0]].tolist())


def example(index, seed, p):
  rng = base.example_rng(seed, index)
  op_prob = operator_probability(p['min_len'], p['max_len'], p['max_depth'],
                                 p['max_args'])
  for _ in range(MAX_TRIES):
    levels = _sample_shape(rng, p, op_prob)
    if levels is not None:
      break
  else:
    raise RuntimeError(
        f'no ListOps tree with length in [{p["min_len"]}, {p["max_len"]}] '
        f'after {MAX_TRIES} tries (max_depth={p["max_depth"]}, '
        f'max_args={p["max_args"]}); widen the length range')
  tokens, label = _write_tree(rng, levels)
  inputs = np.zeros(p['seq_len'], np.int32)
  inputs[:tokens.size] = tokens
  return dict(inputs=inputs, targets=np.int32(label), mask=np.float32(1.0),
              lengths=np.int32(tokens.size), source=to_text(tokens))


CRITERION = base.accuracy_criterion('held-out expressions evaluated')
TASK = base.Task('listops', DEFAULTS, resolve, spec, example, criterion=CRITERION)
