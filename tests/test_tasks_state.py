"""parity, flip_flop and mqar (issue 13) against evaluators written here, independent of the
generators: a bit counter, a flip-flop interpreter that reads the tokens in order, and a dict of the
key-value pairs. Shapes, determinism and resumability are in test_tasks.py (SMALL)."""

import math

import numpy as np
import pytest

from attnlab import tasks
from attnlab.tasks import flip_flop, mqar


# --- parity ---------------------------------------------------------------------------------------

def prefix_parities(bits):
  """Parity of bits[0..t] for every t, by counting ones."""
  out, ones = [], 0
  for bit in bits:
    ones += bit
    out.append(ones % 2)
  return out


def test_parity_running_labels_are_the_prefix_parities():
  batch = tasks.generate('parity', 200, seed=0, seq_len=13)
  assert set(np.unique(batch['inputs'])) == {1, 2}  # bit + 1; 0 is PAD
  for inputs, targets in zip(batch['inputs'], batch['targets']):
    assert targets.tolist() == prefix_parities(inputs - 1)
  assert (batch['mask'] == 1).all() and (batch['lengths'] == 13).all()
  spec = tasks.spec('parity', seq_len=13)
  assert (spec.output, spec.target_len, spec.num_outputs) == ('step', 13, 2)
  assert spec.baseline == pytest.approx(math.log(2))
  assert batch['targets'].mean() == pytest.approx(0.5, abs=0.03)  # fair coins: chance is 0.5


def test_parity_final_label_is_the_parity_of_all_bits():
  final = tasks.generate('parity', 300, seed=1, seq_len=9, variant='final')
  running = tasks.generate('parity', 300, seed=1, seq_len=9, variant='running')
  np.testing.assert_array_equal(final['inputs'], running['inputs'])  # same strings
  expected = [(row - 1).sum() % 2 for row in final['inputs']]
  np.testing.assert_array_equal(final['targets'], expected)
  assert final['targets'].shape == final['mask'].shape == (300,)
  assert (final['mask'] == 1).all()
  spec = tasks.spec('parity', seq_len=9, variant='final')
  assert (spec.output, spec.target_len) == ('sequence', None)
  assert final['targets'].mean() == pytest.approx(0.5, abs=0.08)


# --- flip-flop ------------------------------------------------------------------------------------

WORDS = {1: 'w', 2: 'i', 3: 'r', 4: '0', 5: '1', 6: '?'}


def flip_flop_answers(tokens):
  """{position of each hidden read bit: the bit it must be}, read pair by pair."""
  words = [WORDS[int(t)] for t in tokens]
  assert len(words) % 2 == 0
  memory, answers = None, {}
  for k in range(0, len(words), 2):
    op, bit = words[k], words[k + 1]
    assert op in 'wir'
    if op == 'r':
      assert bit == '?' and memory is not None  # nothing is read before a write
      answers[k + 1] = memory
    else:
      assert bit in '01'
      if op == 'w':
        memory = int(bit)
  return words, answers


def test_flip_flop_reads_give_the_last_written_bit_and_only_they_are_scored():
  batch = tasks.generate('flip_flop', 100, seed=0, seq_len=40, p_ignore=0.5)
  for inputs, targets, mask in zip(batch['inputs'], batch['targets'], batch['mask']):
    words, answers = flip_flop_answers(inputs)
    assert words[0] == 'w' and words[-2] == 'r'  # starts with a write, ends with a read
    assert np.flatnonzero(mask).tolist() == sorted(answers)
    assert [targets[k] for k in sorted(answers)] == [answers[k] for k in sorted(answers)]
    assert not targets[mask == 0].any()
  assert set(batch['mask'].ravel().tolist()) == {0.0, 1.0}
  read_bits = batch['targets'][batch['mask'] > 0]
  assert read_bits.mean() == pytest.approx(0.5, abs=0.05)  # the written bits are fair coins
  assert tasks.spec('flip_flop').baseline == pytest.approx(math.log(2))


@pytest.mark.parametrize('params, want', [
    (dict(p_ignore=0.98), (0.01, 0.98, 0.01)),  # FFL(0.98): sparse reads
    (dict(p_ignore=0.1), (0.45, 0.1, 0.45)),  # FFL(0.1): dense reads
    (dict(p_ignore=0.5, p_write=0.1), (0.1, 0.5, 0.4)),
])
def test_flip_flop_instruction_frequencies(params, want):
  resolved = tasks.spec('flip_flop', **params).params
  np.testing.assert_allclose(flip_flop.probabilities(resolved), want, atol=1e-12)
  batch = tasks.generate('flip_flop', 100, seed=2, seq_len=402, **params)
  middle = batch['inputs'][:, 2:-2:2]  # the i.i.d. instructions: all but the first and last
  counts = [np.mean(middle == token) for token in (1, 2, 3)]
  np.testing.assert_allclose(counts, want, atol=0.01)


def test_flip_flop_sparse_reads_must_remember_across_many_ignores():
  batch = tasks.generate('flip_flop', 50, seed=3, seq_len=200, p_ignore=0.98)
  distances = []
  for inputs in batch['inputs']:
    ops = inputs[0::2]
    writes = np.flatnonzero(ops == 1)
    for read in np.flatnonzero(ops == 3):
      distances.append(read - writes[writes < read].max())
  assert np.median(distances) > 20  # the last write is far back, beyond the previous pair


# --- MQAR -----------------------------------------------------------------------------------------

def test_mqar_queries_are_answered_by_the_pairs():
  pairs, steps, vocab = 5, 30, 40
  batch = tasks.generate('mqar', 200, seed=0, seq_len=steps, num_pairs=pairs, vocab_size=vocab)
  spec = tasks.spec('mqar', seq_len=steps, num_pairs=pairs, vocab_size=vocab)
  assert spec.num_outputs == vocab - vocab // 2
  assert spec.baseline == pytest.approx(math.log(vocab - vocab // 2))
  for inputs, targets, mask in zip(batch['inputs'], batch['targets'], batch['mask']):
    keys, values = inputs[0:2 * pairs:2], inputs[1:2 * pairs:2]
    assert len(set(keys.tolist())) == pairs and len(set(values.tolist())) == pairs
    assert ((keys >= 1) & (keys < vocab // 2)).all()
    assert ((values >= vocab // 2) & (values < vocab)).all()
    assert ((inputs >= 1) & (inputs < vocab)).all()  # filler too: 0 is PAD
    value_of = dict(zip(keys.tolist(), values.tolist()))
    queries = np.flatnonzero(mask)
    assert len(queries) == pairs  # num_queries=None: every key once
    assert (queries >= 2 * pairs).all() and ((queries - 2 * pairs) % 2 == 0).all()
    assert sorted(inputs[queries].tolist()) == sorted(keys.tolist())
    for q in queries:
      assert targets[q] == value_of[inputs[q]] - vocab // 2
    assert not targets[mask == 0].any()
  assert len(np.unique(batch['targets'][batch['mask'] > 0])) > 15  # values spread over the classes


def test_mqar_num_queries_picks_distinct_keys():
  batch = tasks.generate('mqar', 50, seed=1, seq_len=40, num_pairs=8, num_queries=3)
  for inputs, mask in zip(batch['inputs'], batch['mask']):
    asked = inputs[mask > 0]
    assert len(asked) == len(set(asked.tolist())) == 3
    assert set(asked.tolist()) <= set(inputs[0:16:2].tolist())


def test_mqar_query_gaps_follow_zoologys_power_law():
  params = dict(seq_len=24, num_pairs=2, num_queries=1, vocab_size=16)
  space = (24 - 4) // 2
  for power_a in (0.01, 1.0):
    batch = tasks.generate('mqar', 3000, seed=4, power_a=power_a, **params)
    gaps = (np.flatnonzero(batch['mask']) % 24 - 4) // 2
    seen = np.bincount(gaps, minlength=space) / len(gaps)
    want = np.arange(1, space + 1) ** (power_a - 1.0)
    np.testing.assert_allclose(seen, want / want.sum(), atol=0.03)
  np.testing.assert_allclose(mqar.gap_probabilities(4, 1.0), 0.25)


# --- arguments ------------------------------------------------------------------------------------

@pytest.mark.parametrize('name, params, match', [
    ('parity', dict(variant='middle'), r"variant='middle' is invalid; expected one of"),
    ('parity', dict(seq_len=0), 'seq_len=0'),
    ('flip_flop', dict(seq_len=7), 'seq_len=7 is invalid; expected an even integer'),
    ('flip_flop', dict(seq_len=2), 'seq_len=2'),
    ('flip_flop', dict(p_ignore=1.5), r'p_ignore=1.5 is invalid; expected a number in \[0.0, 1'),
    ('flip_flop', dict(p_ignore='high'), "p_ignore='high'"),
    ('flip_flop', dict(p_write=0.5, p_read=0.5), 'add up to 1'),
    ('flip_flop', dict(p_ignore=0.5, p_write=0.7), 'add up to 1'),
    ('mqar', dict(num_pairs=8, vocab_size=16), r'num_pairs=8 .*\[1, 7\]'),
    ('mqar', dict(num_pairs=4, num_queries=5), r'num_queries=5 .*\[1, 4\]'),
    ('mqar', dict(seq_len=20, num_pairs=8), 'leaves 2 query slots'),
    ('mqar', dict(power_a=-1.0), 'power_a=-1.0'),
])
def test_bad_parameters_name_themselves(name, params, match):
  with pytest.raises(ValueError, match=match):
    tasks.spec(name, **params)


def test_criteria_are_accuracy_at_099():
  for name in ('parity', 'flip_flop', 'mqar'):
    criterion = tasks.criterion(name)
    assert (criterion.metric, criterion.threshold) == ('eval_score', 0.99)


def test_parity_with_min_len_draws_lengths_uniformly_and_pads():
  # Delétang et al. 2023: training strings of every length 1..40, padded to 40
  batch = tasks.generate('parity', 4000, seed=3, seq_len=40, min_len=1, variant='running')
  lengths = batch['lengths']
  assert lengths.min() == 1 and lengths.max() == 40
  counts = np.bincount(lengths, minlength=41)[1:]
  assert counts.min() > 4000 / 40 * 0.5 and counts.max() < 4000 / 40 * 1.5  # uniform, 100 each
  for inputs, targets, mask, n in zip(batch['inputs'], batch['targets'], batch['mask'], lengths):
    assert set(np.unique(inputs[:n])) <= {1, 2} and (inputs[n:] == 0).all()  # PAD after the string
    assert targets[:n].tolist() == prefix_parities(inputs[:n] - 1)
    assert (mask[:n] == 1).all() and (mask[n:] == 0).all() and (targets[n:] == 0).all()
  final = tasks.generate('parity', 500, seed=3, seq_len=40, min_len=1, variant='final')
  np.testing.assert_array_equal(final['lengths'], lengths[:500])  # same strings as 'running'
  expected = [(row[:n] - 1).sum() % 2 for row, n in zip(final['inputs'], final['lengths'])]
  np.testing.assert_array_equal(final['targets'], expected)
  # a test length on its own: seq_len = min_len = L gives every string length L
  exact = tasks.generate('parity', 50, seed=0, seq_len=41, min_len=41, variant='final')
  assert (exact['lengths'] == 41).all() and (exact['inputs'] > 0).all()


@pytest.mark.parametrize('min_len', [0, 13, 1.5])
def test_parity_min_len_outside_1_to_seq_len_is_refused(min_len):
  with pytest.raises(ValueError, match='min_len'):
    tasks.generate('parity', 1, seed=0, seq_len=12, min_len=min_len)
