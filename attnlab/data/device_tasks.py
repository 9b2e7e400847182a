"""The synthetic tasks drawn with jax.random: one example from one key, traceable under jit/vmap.

GENERATORS[name](key, p) -> dict of one example, p the task's resolved params (static). Each gives
the keys, shapes and dtypes of attnlab.tasks.example(name, ...) and draws from the same
distribution (the task modules' docstrings are the definition; tests/test_on_device_data.py
checks every invariant and compares histograms with the NumPy generator). The random numbers
differ: jax.random is not NumPy's PCG64, so example i here is not NumPy's example i.

Batching and keys live in attnlab.data.on_device.
"""

import jax
import jax.numpy as jnp
import numpy as np

from attnlab.tasks import adding, flip_flop, mqar, temporal_order


def _ordered_subset(key, population, size):
  """`size` distinct values of range(population), in a uniformly random order (int32)."""
  return jax.random.permutation(key, population)[:size].astype(jnp.int32)


def _adding(key, p):
  """adding (both variants): inputs (P, 2) f32, targets () f32, mask () f32, lengths () i32."""
  steps = p['seq_len']
  if p['variant'] == 'hochreiter1997':
    return _hochreiter1997(key, steps)
  k_values, k_first, k_second = jax.random.split(key, 3)
  values = jax.random.uniform(k_values, (steps,), jnp.float32)
  first = jax.random.randint(k_first, (), 0, steps // 2)
  second = jax.random.randint(k_second, (), steps // 2, steps)
  markers = jnp.zeros(steps, jnp.float32).at[first].set(1.0).at[second].set(1.0)
  return dict(inputs=jnp.stack([values, markers], axis=-1), targets=values[first] + values[second],
              mask=jnp.float32(1.0), lengths=jnp.int32(steps))


def _hochreiter1997(key, steps):
  """The 1997 protocol (see attnlab.tasks.adding): length in [T, T + T // 10], values U[-1, 1)."""
  padded = adding.max_len(dict(seq_len=steps, variant='hochreiter1997'))
  k_length, k_values, k_first, k_second = jax.random.split(key, 4)
  length = jax.random.randint(k_length, (), steps, padded + 1)
  where = jnp.arange(padded)
  values = jax.random.uniform(k_values, (padded,), jnp.float32, -1.0, 1.0)
  values = jnp.where(where < length, values, 0.0)
  first = jax.random.randint(k_first, (), 0, min(adding.FIRST_MARKER_STEPS, steps))
  k = jax.random.randint(k_second, (), 0, steps // 2 - 1)  # the k-th still unmarked pair
  second = jnp.where(k < first, k, k + 1)
  markers = jnp.zeros(padded, jnp.float32).at[0].set(-1.0).at[length - 1].set(-1.0)
  markers = markers.at[first].set(1.0).at[second].set(1.0)
  values = values.at[0].set(jnp.where(markers[0] == 1.0, 0.0, values[0]))  # "X1 = 0"
  target = 0.5 + (values[first] + values[second]) / 4.0
  return dict(inputs=jnp.stack([values, markers], axis=-1), targets=target.astype(jnp.float32),
              mask=jnp.float32(1.0), lengths=length.astype(jnp.int32))


def _copy(key, p):
  """copy: inputs, targets (L,) i32, mask (L,) f32 ones, lengths () i32; L = T + 2K."""
  delay, num_copy, num_symbols = p['seq_len'], p['num_copy'], p['num_symbols']
  total = delay + 2 * num_copy
  symbols = jax.random.randint(key, (num_copy,), 1, num_symbols + 1)
  inputs = jnp.zeros(total, jnp.int32).at[:num_copy].set(symbols)
  inputs = inputs.at[num_copy + delay - 1].set(num_symbols + 1)  # delimiter
  targets = jnp.zeros(total, jnp.int32).at[total - num_copy:].set(symbols)
  return dict(inputs=inputs, targets=targets, mask=jnp.ones(total, jnp.float32),
              lengths=jnp.int32(total))


def _parity(key, p):
  """parity: inputs (T,) i32; targets/mask (T,) running or () final; lengths () i32."""
  steps = p['seq_len']
  k_length, k_bits = jax.random.split(key)
  if p['min_len'] is None:
    length = jnp.int32(steps)
  else:
    length = jax.random.randint(k_length, (), p['min_len'], steps + 1)
  valid = jnp.arange(steps) < length
  bits = jnp.where(valid, jax.random.randint(k_bits, (steps,), 0, 2), 0)
  running = (jnp.cumsum(bits) % 2).astype(jnp.int32)
  inputs = jnp.where(valid, bits + 1, 0).astype(jnp.int32)  # 1 bit 0, 2 bit 1, 0 PAD
  if p['variant'] == 'running':
    targets, mask = jnp.where(valid, running, 0), valid.astype(jnp.float32)
  else:
    targets, mask = running[steps - 1], jnp.float32(1.0)  # bits past L are 0: the parity of L bits
  return dict(inputs=inputs, targets=targets.astype(jnp.int32), mask=mask,
              lengths=length.astype(jnp.int32))


def _flip_flop(key, p):
  """flip_flop: inputs, targets (T,) i32, mask (T,) f32 on the read bits, lengths () i32."""
  pairs = p['seq_len'] // 2
  k_ops, k_bits = jax.random.split(key)
  chances = np.array(flip_flop.probabilities(p))
  codes = jnp.array([flip_flop.WRITE, flip_flop.IGNORE, flip_flop.READ], jnp.int32)
  ops = jax.random.choice(k_ops, codes, (pairs,), p=jnp.asarray(chances / chances.sum(),
                                                                  jnp.float32))
  ops = ops.at[0].set(flip_flop.WRITE).at[pairs - 1].set(flip_flop.READ)
  bits = jax.random.randint(k_bits, (pairs,), 0, 2)
  steps = jnp.arange(pairs)
  last_write = jax.lax.cummax(jnp.where(ops == flip_flop.WRITE, steps, 0))  # ops[0] is a write
  reads = ops == flip_flop.READ
  shown = jnp.where(reads, flip_flop.QUERY, bits + flip_flop.FIRST_BIT)
  answer = jnp.where(reads, bits[last_write], 0)
  zeros = jnp.zeros(pairs, jnp.int32)
  return dict(inputs=jnp.stack([ops, shown], -1).reshape(-1).astype(jnp.int32),
              targets=jnp.stack([zeros, answer], -1).reshape(-1).astype(jnp.int32),
              mask=jnp.stack([zeros, reads], -1).reshape(-1).astype(jnp.float32),
              lengths=jnp.int32(2 * pairs))


def _selective_copy(key, p):
  """selective_copy: inputs, targets (L,) i32, mask (L,) f32 on the last K; L = T + 1 + K."""
  region, num_copy, num_symbols = p['seq_len'], p['num_copy'], p['num_symbols']
  total = region + 1 + num_copy
  k_symbols, k_positions = jax.random.split(key)
  symbols = jax.random.randint(k_symbols, (num_copy,), 1, num_symbols + 1)
  positions = jnp.sort(_ordered_subset(k_positions, region, num_copy))
  inputs = jnp.zeros(total, jnp.int32).at[positions].set(symbols).at[region].set(num_symbols + 1)
  targets = jnp.zeros(total, jnp.int32).at[total - num_copy:].set(symbols)
  mask = jnp.zeros(total, jnp.float32).at[total - num_copy:].set(1.0)
  return dict(inputs=inputs, targets=targets, mask=mask, lengths=jnp.int32(total))


def _mqar(key, p):
  """mqar: inputs, targets (T,) i32, mask (T,) f32 at the queries, lengths () i32."""
  steps, pairs, vocab = p['seq_len'], p['num_pairs'], p['vocab_size']
  first_value = vocab // 2
  k_keys, k_values, k_asked, k_gaps, k_filler = jax.random.split(key, 5)
  keys = _ordered_subset(k_keys, first_value - 1, pairs) + 1
  values = _ordered_subset(k_values, vocab - first_value, pairs) + first_value
  asked = _ordered_subset(k_asked, pairs, mqar.num_queries(p))
  space = (steps - 2 * pairs + 1) // 2
  # Weighted sampling without replacement (NumPy's successive draws) = Gumbel top-k.
  log_weights = np.log(mqar.gap_probabilities(space, p['power_a'])).astype(np.float32)
  scores = jax.random.gumbel(k_gaps, (space,), jnp.float32) + log_weights
  gaps = jax.lax.top_k(scores, asked.shape[0])[1]
  inputs = jax.random.randint(k_filler, (steps,), 1, vocab)  # the filler
  inputs = inputs.at[0:2 * pairs:2].set(keys).at[1:2 * pairs:2].set(values)
  where = 2 * pairs + 2 * gaps
  inputs = inputs.at[where].set(keys[asked])
  targets = jnp.zeros(steps, jnp.int32).at[where].set(values[asked] - first_value)
  mask = jnp.zeros(steps, jnp.float32).at[where].set(1.0)
  return dict(inputs=inputs.astype(jnp.int32), targets=targets, mask=mask,
              lengths=jnp.int32(steps))


def _associative_recall(key, p):
  """associative_recall: inputs (2P + 2,) i32, targets () i32, mask () f32, lengths () i32."""
  num_pairs, num_keys, num_values = p['num_pairs'], p['num_keys'], p['num_values']
  k_keys, k_values, k_query = jax.random.split(key, 3)
  keys = _ordered_subset(k_keys, num_keys, num_pairs) + 1
  values = jax.random.randint(k_values, (num_pairs,), 0, num_values)
  query = jax.random.randint(k_query, (), 0, num_pairs)
  pairs = jnp.stack([keys, values + num_keys + 1], -1).reshape(-1)
  inputs = jnp.concatenate([pairs, jnp.array([num_keys + num_values + 1]), keys[query][None]])
  return dict(inputs=inputs.astype(jnp.int32), targets=values[query].astype(jnp.int32),
              mask=jnp.float32(1.0), lengths=jnp.int32(2 * num_pairs + 2))


def _temporal_order(key, p):
  """temporal_order: inputs (T,) i32, targets () i32 (2 [first is Y] + [second is Y])."""
  steps = p['seq_len']
  (lo1, hi1), (lo2, hi2) = temporal_order.relevant_steps(steps)
  k_noise, k_kinds, k_t1, k_t2 = jax.random.split(key, 4)
  first_noise, last_noise = temporal_order.NOISE[0], temporal_order.NOISE[-1]
  inputs = jax.random.randint(k_noise, (steps,), first_noise, last_noise + 1)
  inputs = inputs.at[0].set(temporal_order.START).at[steps - 1].set(temporal_order.END)
  first_is_y, second_is_y = jax.random.randint(k_kinds, (2,), 0, 2)
  symbol = lambda is_y: jnp.where(is_y == 1, temporal_order.Y, temporal_order.X)
  inputs = inputs.at[jax.random.randint(k_t1, (), lo1, hi1 + 1)].set(symbol(first_is_y))
  inputs = inputs.at[jax.random.randint(k_t2, (), lo2, hi2 + 1)].set(symbol(second_is_y))
  return dict(inputs=inputs.astype(jnp.int32),
              targets=(2 * first_is_y + second_is_y).astype(jnp.int32),
              mask=jnp.float32(1.0), lengths=jnp.int32(steps))


GENERATORS = {
    'adding': _adding,
    'copy': _copy,
    'parity': _parity,
    'flip_flop': _flip_flop,
    'selective_copy': _selective_copy,
    'mqar': _mqar,
    'associative_recall': _associative_recall,
    'temporal_order': _temporal_order,
}
