"""Tests for attnlab.tasks: shapes, determinism and the content of each task."""

import dataclasses
import math

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from attnlab import tasks
from attnlab.tasks import metrics
from attnlab.tasks import vocab

# Small settings so every task generates quickly.
SMALL = {
    'copy': dict(seq_len=20),
    'adding': dict(seq_len=30),
    'selective_copy': dict(seq_len=30, num_copy=5),
    'associative_recall': dict(num_pairs=6),
    'temporal_order': dict(seq_len=50),
    'listops': dict(min_len=20, max_len=100, max_depth=5, max_args=5),
    'reverse': dict(max_len=12),
    'sort': dict(max_len=12),
    'digits': dict(),
    'parity': dict(seq_len=12),
    'flip_flop': dict(seq_len=16),
    'mqar': dict(seq_len=24, num_pairs=4, vocab_size=32),
}
SEQ2SEQ_KEYS = {'source', 'source_lengths', 'target', 'target_inputs',
                'target_mask', 'target_lengths'}


def first_input(batch):
  return batch['source'] if 'target_inputs' in batch else batch['inputs']


def assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    assert a[key].dtype == b[key].dtype, key
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_task_names():
  assert tasks.TASKS == ('copy', 'adding', 'selective_copy',
                         'associative_recall', 'temporal_order', 'listops',
                         'reverse', 'sort', 'digits', 'parity', 'flip_flop',
                         'mqar')


@pytest.mark.parametrize('name', tasks.TASKS)
def test_shapes_and_dtypes_follow_spec(name):
  n = 6
  spec = tasks.spec(name, **SMALL[name])
  batch = tasks.generate(name, n, seed=3, **SMALL[name])
  assert spec.name == name
  if spec.kind == 'seq2seq':
    assert set(batch) == SEQ2SEQ_KEYS
    assert batch['source'].shape == (n, spec.seq_len)
    for key in ('target', 'target_inputs', 'target_mask'):
      assert batch[key].shape == (n, spec.target_len)
    assert batch['target_mask'].dtype == np.float32
    for key in SEQ2SEQ_KEYS - {'target_mask'}:
      assert batch[key].dtype == np.int32, key
    assert batch['target'].max() < spec.num_outputs
    assert batch['source'].max() < spec.vocab_size
    return
  assert {'inputs', 'targets', 'mask', 'lengths'} <= set(batch)
  if spec.input_kind == 'tokens':
    assert batch['inputs'].shape == (n, spec.seq_len)
    assert batch['inputs'].dtype == np.int32
    assert 0 <= batch['inputs'].min() and batch['inputs'].max() < spec.vocab_size
  else:
    assert batch['inputs'].shape == (n, spec.seq_len, spec.input_dim)
    assert batch['inputs'].dtype == np.float32
  target_shape = (n,) if spec.output == 'sequence' else (n, spec.target_len)
  assert batch['targets'].shape == target_shape
  assert batch['mask'].shape == target_shape
  assert batch['mask'].dtype == np.float32
  assert batch['lengths'].shape == (n,) and batch['lengths'].dtype == np.int32
  assert (batch['lengths'] <= spec.seq_len).all()
  if spec.kind == 'regression':
    assert batch['targets'].dtype == np.float32 and spec.num_outputs == 1
  else:
    assert batch['targets'].dtype == np.int32
    assert 0 <= batch['targets'].min() and batch['targets'].max() < spec.num_outputs


@pytest.mark.parametrize('name', tasks.TASKS)
def test_deterministic_and_resumable(name):
  params = SMALL[name]
  full = tasks.generate(name, 10, seed=5, **params)
  assert_batches_equal(full, tasks.generate(name, 10, seed=5, **params))
  part = tasks.generate(name, 4, seed=5, start=3, **params)
  assert_batches_equal(part, {k: v[3:7] for k, v in full.items()})
  one = tasks.example(name, 7, seed=5, **params)
  for key, value in one.items():
    np.testing.assert_array_equal(np.asarray(value), full[key][7])
  if name != 'digits':  # digits ignores the seed: the split fixes the order
    other = tasks.generate(name, 10, seed=6, **params)
    assert not np.array_equal(first_input(full), first_input(other))


@hypothesis.settings(max_examples=8, deadline=None)
@hypothesis.given(name=st.sampled_from(['copy', 'listops', 'sort']),
                  start=st.integers(0, 1000), sizes=st.lists(
                      st.integers(0, 4), min_size=1, max_size=3))
def test_generate_concatenates(name, start, sizes):
  params = SMALL[name]
  whole = tasks.generate(name, sum(sizes), seed=1, start=start, **params)
  parts, offset = [], start
  for size in sizes:
    parts.append(tasks.generate(name, size, seed=1, start=offset, **params))
    offset += size
  joined = {k: np.concatenate([p[k] for p in parts]) for k in whole}
  assert_batches_equal(whole, joined)


def test_zero_examples_keep_shapes():
  batch = tasks.generate('copy', 0, seq_len=20)
  assert batch['inputs'].shape == (0, 40) and batch['inputs'].dtype == np.int32


def test_copy_layout():
  delay, num_symbols, num_copy = 30, 8, 10
  batch = tasks.generate('copy', 50, seed=0, seq_len=delay)
  inputs, targets = batch['inputs'], batch['targets']
  total = delay + 2 * num_copy
  assert inputs.shape == (50, total)
  symbols = inputs[:, :num_copy]
  assert ((symbols >= 1) & (symbols <= num_symbols)).all()
  assert (inputs[:, num_copy:num_copy + delay - 1] == 0).all()
  assert (inputs[:, num_copy + delay - 1] == num_symbols + 1).all()
  assert (inputs[:, -num_copy:] == 0).all()
  assert (targets[:, :-num_copy] == 0).all()
  np.testing.assert_array_equal(targets[:, -num_copy:], symbols)
  assert (batch['mask'] == 1).all() and (batch['lengths'] == total).all()
  spec = tasks.spec('copy', seq_len=delay)
  assert spec.baseline == pytest.approx(10 * math.log(8) / (delay + 20))
  assert spec.num_outputs == num_symbols + 1


def test_adding_markers_and_sum():
  steps = 40
  batch = tasks.generate('adding', 200, seed=0, seq_len=steps)
  values, markers = batch['inputs'][..., 0], batch['inputs'][..., 1]
  assert ((values >= 0) & (values < 1)).all()
  assert set(np.unique(markers)) == {0.0, 1.0}
  assert (markers.sum(axis=1) == 2).all()
  assert (markers[:, :steps // 2].sum(axis=1) == 1).all()
  assert (markers[:, steps // 2:].sum(axis=1) == 1).all()
  expected = np.array([v[m == 1].sum(dtype=np.float32)
                       for v, m in zip(values, markers)])
  np.testing.assert_allclose(batch['targets'], expected, rtol=0, atol=1e-6)
  assert tasks.spec('adding').baseline == pytest.approx(1 / 6)
  # Predicting the mean 1.0 scores about the baseline MSE.
  assert np.mean((batch['targets'] - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.05)


def test_adding_solved():
  tol = tasks.ADDING_TOLERANCE
  solved = tasks.adding_solved(np.array([1.0, 1.0, 0.5]),
                               np.array([1.0 + 0.9 * tol, 1.0 + 1.1 * tol, 0.5]))
  np.testing.assert_array_equal(solved, [True, False, True])


def test_selective_copy_outputs_scattered_symbols_in_order():
  region, num_copy, num_symbols = 40, 6, 8
  params = dict(seq_len=region, num_copy=num_copy, num_symbols=num_symbols)
  batch = tasks.generate('selective_copy', 50, seed=0, **params)
  for inputs, targets, mask in zip(batch['inputs'], batch['targets'],
                                   batch['mask']):
    scattered = inputs[:region][inputs[:region] != 0]
    assert scattered.size == num_copy
    assert inputs[region] == num_symbols + 1
    assert (inputs[region + 1:] == 0).all()
    np.testing.assert_array_equal(targets[mask == 1], scattered)
    assert (mask[-num_copy:] == 1).all() and (mask[:-num_copy] == 0).all()
    assert (targets[:-num_copy] == 0).all()
  # The symbols really are scattered, not always at the same positions.
  positions = {tuple(np.flatnonzero(x[:region])) for x in batch['inputs']}
  assert len(positions) > 40


def test_associative_recall_answer_is_paired_value():
  num_pairs, num_keys, num_values = 5, 12, 7
  params = dict(num_pairs=num_pairs, num_keys=num_keys, num_values=num_values)
  batch = tasks.generate('associative_recall', 100, seed=0, **params)
  for inputs, target in zip(batch['inputs'], batch['targets']):
    keys, values = inputs[0:-2:2], inputs[1:-2:2]
    assert len(set(keys.tolist())) == num_pairs
    assert ((keys >= 1) & (keys <= num_keys)).all()
    assert ((values > num_keys) & (values <= num_keys + num_values)).all()
    assert inputs[-2] == num_keys + num_values + 1
    query = inputs[-1]
    assert query in keys
    assert target == values[keys == query][0] - (num_keys + 1)
  assert len(np.unique(batch['targets'])) == num_values


def test_temporal_order_label_matches_order():
  steps = 100
  batch = tasks.generate('temporal_order', 200, seed=0, seq_len=steps)
  names = {5: 'X', 6: 'Y'}
  for inputs, target in zip(batch['inputs'], batch['targets']):
    assert inputs[0] == 7 and inputs[-1] == 8
    relevant = np.flatnonzero((inputs == 5) | (inputs == 6))
    assert relevant.size == 2
    t1, t2 = relevant
    assert 10 <= t1 <= 20 and 50 <= t2 <= 60  # the paper's windows at T=100
    noise = np.delete(inputs, [0, t1, t2, steps - 1])
    assert ((noise >= 1) & (noise <= 4)).all()
    order = names[inputs[t1]] + names[inputs[t2]]
    assert ('XX', 'XY', 'YX', 'YY')[target] == order
  assert set(batch['targets'].tolist()) == {0, 1, 2, 3}


# ListOps: an evaluator of the LRA text, independent of the generator.
LISTOPS_WORDS = ['<pad>'] + [str(d) for d in range(10)] + [
    '[MIN', '[MAX', '[MED', '[SM', ']']


def evaluate_listops(text):
  """Value of an LRA ListOps expression, and facts about its tree."""
  stack = [[]]  # one argument list per open operator; the bottom is the root
  facts = dict(depth=0, fewest_args=99, most_args=0, even_medians=0)
  for word in text.split():
    if word.startswith('['):
      stack.append([word])
      facts['depth'] = max(facts['depth'], len(stack) - 1)
    elif word == ']':
      operator, *args = stack.pop()
      facts['fewest_args'] = min(facts['fewest_args'], len(args))
      facts['most_args'] = max(facts['most_args'], len(args))
      ordered = sorted(args)
      middle = len(ordered) // 2
      if operator == '[MIN':
        value = ordered[0]
      elif operator == '[MAX':
        value = ordered[-1]
      elif operator == '[SM':
        value = sum(args) % 10
      elif len(ordered) % 2:
        value = ordered[middle]
      else:  # int(np.median(args)): mean of the two middle values, truncated
        value = int((ordered[middle - 1] + ordered[middle]) / 2)
        facts['even_medians'] += 1
      stack[-1].append(value)
    else:
      stack[-1].append(int(word))
  assert len(stack) == 1
  (value,) = stack[0]
  return value, facts


def test_listops_evaluator_itself():
  value, facts = evaluate_listops('[MAX 2 9 [MIN 4 7 ] 0 ]')
  assert value == 9
  assert facts == dict(depth=2, fewest_args=2, most_args=4, even_medians=0)
  assert evaluate_listops('[MED 1 2 ]')[0] == 1
  assert evaluate_listops('[MED 3 8 1 6 ]')[0] == 4
  assert evaluate_listops('[SM 9 [MED 7 1 5 ] 8 ]')[0] == 2


def test_listops_labels_lengths_and_text():
  batch = tasks.generate('listops', 300, seed=0)
  lengths = batch['lengths']
  assert ((lengths >= 500) & (lengths <= 2000)).all()
  assert batch['inputs'].shape == (300, 2000)
  even_medians = 0
  for inputs, length, target, text in zip(batch['inputs'], lengths,
                                          batch['targets'], batch['source']):
    assert (inputs[length:] == 0).all() and (inputs[:length] != 0).all()
    assert ' '.join(LISTOPS_WORDS[t] for t in inputs[:length]) == text
    value, facts = evaluate_listops(text)
    assert value == target, text
    # max_depth=10: operators nest at most 9 deep; 2..10 arguments each.
    assert facts['depth'] <= 9
    assert 2 <= facts['fewest_args'] and facts['most_args'] <= 10
    even_medians += facts['even_medians']
  assert even_medians > 100  # the int(np.median) rule was exercised
  counts = np.bincount(batch['targets'], minlength=10)
  assert counts.max() <= 0.6 * counts.sum()
  assert (counts > 0).sum() >= 5


def test_listops_small_trees_respect_limits():
  params = dict(min_len=10, max_len=60, max_depth=4, max_args=3, seq_len=64)
  batch = tasks.generate('listops', 300, seed=1, **params)
  assert batch['inputs'].shape == (300, 64)
  assert ((batch['lengths'] >= 10) & (batch['lengths'] <= 60)).all()
  for text, target in zip(batch['source'], batch['targets']):
    value, facts = evaluate_listops(text)
    assert value == target and facts['depth'] <= 3
    assert 2 <= facts['fewest_args'] and facts['most_args'] <= 3
    assert text.startswith('[') and text.endswith(']')


@pytest.mark.parametrize('name, transform', [('reverse', lambda s: s[::-1]),
                                             ('sort', sorted)])
def test_seq2seq_targets(name, transform):
  params = dict(min_len=2, max_len=9, num_symbols=5)
  batch = tasks.generate(name, 200, seed=0, **params)
  assert set(batch['source_lengths'].tolist()) == set(range(2, 10))
  for i in range(200):
    length = batch['source_lengths'][i]
    source = batch['source'][i]
    assert ((source[:length] >= vocab.FIRST_SYMBOL)
            & (source[:length] < vocab.FIRST_SYMBOL + 5)).all()
    assert (source[length:] == vocab.PAD).all()
    target = batch['target'][i]
    np.testing.assert_array_equal(target[:length], transform(source[:length]))
    assert target[length] == vocab.EOS and (target[length + 1:] == vocab.PAD).all()
    np.testing.assert_array_equal(batch['target_inputs'][i],
                                  np.concatenate([[vocab.BOS], target[:-1]]))
    np.testing.assert_array_equal(batch['target_mask'][i],
                                  np.arange(10) <= length)
    assert batch['target_lengths'][i] == length + 1


def test_digits_splits():
  train = tasks.generate('digits', 1437, split='train')
  test = tasks.generate('digits', 360, split='test')
  assert tasks.num_examples('digits', split='train') == 1437
  assert tasks.num_examples('digits', split='test') == 360
  assert tasks.num_examples('copy') is None
  assert train['inputs'].min() == 0.0 and train['inputs'].max() == 1.0
  from sklearn.datasets import load_digits
  everything = load_digits()
  counts = np.bincount(np.concatenate([train['targets'], test['targets']]))
  np.testing.assert_array_equal(counts, np.bincount(everything.target))
  permuted = tasks.generate('digits', 50, permute=True, permutation_seed=3)
  order = np.random.default_rng(3).permutation(64)
  np.testing.assert_array_equal(permuted['inputs'],
                                train['inputs'][:50][:, order])
  with pytest.raises(ValueError, match='1437'):
    tasks.generate('digits', 10, start=1430)
  with pytest.raises(ValueError, match='index=360'):
    tasks.example('digits', 360, split='test')


@pytest.mark.parametrize('call, match', [
    (lambda: tasks.generate('copyy', 2), "unknown task 'copyy'.*listops"),
    (lambda: tasks.spec('nope'), 'valid tasks: copy, adding'),
    (lambda: tasks.generate('copy', 2, length=5), 'length.*seq_len'),
    (lambda: tasks.generate('copy', 2, seq_len=0), 'seq_len=0'),
    (lambda: tasks.generate('copy', 2, num_copy=-1), 'num_copy=-1'),
    (lambda: tasks.generate('copy', -1), 'n=-1'),
    (lambda: tasks.generate('copy', 2, start=-3), 'start=-3'),
    (lambda: tasks.generate('copy', 2, seed=-1), 'seed=-1'),
    (lambda: tasks.generate('copy', 2.5), 'n=2.5'),
    (lambda: tasks.generate('adding', 2, seq_len=1), r'seq_len=1 .*>= 2'),
    (lambda: tasks.spec('selective_copy', seq_len=4, num_copy=5),
     r'num_copy=5 .*\[1, 4\]'),
    (lambda: tasks.spec('associative_recall', num_pairs=9, num_keys=8),
     r'num_pairs=9 .*\[1, 8\]'),
    (lambda: tasks.spec('temporal_order', seq_len=5), 'seq_len=5'),
    (lambda: tasks.spec('listops', min_len=300, max_len=200),
     r'min_len=300 .*\[1, 200\]'),
    (lambda: tasks.spec('listops', max_depth=1), 'max_depth=1'),
    (lambda: tasks.spec('listops', min_len=10, max_len=100, seq_len=50), 'seq_len=50'),
    (lambda: tasks.spec('listops', min_len=500, max_depth=3, max_args=3),
     r'min_len=500 .*\[1, 17\]'),
    (lambda: tasks.spec('reverse', min_len=5, max_len=3), 'min_len=5'),
    (lambda: tasks.spec('sort', num_symbols=0), 'num_symbols=0'),
    (lambda: tasks.spec('digits', split='val'), "split='val'"),
    (lambda: tasks.spec('digits', permute='yes'), "permute='yes'"),
])
def test_bad_arguments_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_specs_describe_inputs():
  copy = tasks.spec('copy', seq_len=50, num_symbols=4, num_copy=3)
  assert (copy.seq_len, copy.target_len, copy.vocab_size) == (56, 56, 6)
  assert copy.params == dict(seq_len=50, num_symbols=4, num_copy=3)
  listops = tasks.spec('listops')
  assert listops.vocab_size == 16 and listops.seq_len == 2000
  assert listops.baseline == pytest.approx(math.log(10))
  assert tasks.spec('temporal_order').baseline == pytest.approx(math.log(4))
  reverse = tasks.spec('reverse', max_len=7, num_symbols=4)
  assert (reverse.seq_len, reverse.target_len, reverse.num_outputs) == (7, 8, 7)
  digits = tasks.spec('digits')
  assert (digits.input_kind, digits.input_dim, digits.vocab_size) == ('real', 1, None)
  with pytest.raises(dataclasses.FrozenInstanceError):
    copy.seq_len = 3


def test_metrics():
  pred = np.array([[3, 4, 2, 0], [3, 5, 2, 0]])
  target = np.array([[3, 4, 2, 0], [3, 4, 2, 0]])
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 0]], np.float32)
  np.testing.assert_array_equal(metrics.exact_match(pred, target, mask),
                                [True, False])
  assert metrics.masked_accuracy(pred, target, mask) == pytest.approx(5 / 6)
  assert metrics.accuracy_by_length([1, 0, 1, 1], [2, 2, 3, 5]) == {
      2: 0.5, 3: 1.0, 5: 1.0}


def test_tasks_package_is_pure_numpy():
  import pathlib
  package = pathlib.Path(tasks.__file__).parent
  for path in package.glob('*.py'):
    source = path.read_text()
    for banned in ('import jax', 'from jax', 'tensorflow', 'import torch'):
      assert banned not in source, (path.name, banned)
