"""The training stream of a synthetic task, drawn on the device inside the compiled program.

  SUPPORTED                                   tasks with a device generator (device_tasks.py)
  supported(task_name, params) -> bool        whether task_name (with params) has one
  example_key(data_seed, index) -> key        the key example `index` of the stream is drawn from
  make_batch_fn(task_name, params, batch_size, data_seed, shard_index=0, shard_count=1)
      -> batch_fn(step) -> dict               the per-host batch of train step `step`
  make_k_batches_fn(...same...)
      -> k_batches_fn(first_step, k) -> dict  steps first_step .. first_step + k - 1 stacked on a
                                              leading axis k (k static)

Both functions are pure and traceable (jit, vmap, lax.scan): `step` may be a traced int32. A batch
has exactly the keys, shapes and dtypes of the host pipeline's train batch (attnlab.data.
make_dataset(..., split='train')): inputs, targets, mask, lengths, batch_size // shard_count
examples each.

Order: train step s (1-based, as the trainer counts: step s consumes the s-th batch) reads the
stream positions (s - 1) * batch_size .. s * batch_size - 1; host k of n takes positions
(s - 1) * batch_size + k + n * j, j = 0 .. batch_size / n - 1 (the host pipeline's sharding).
Position i is drawn from example_key(data_seed, i) alone, so a batch depends on (data_seed, step,
batch_size) only: a run resumes from its step with no pipeline state, and the batch of step s is
the same whether it is made alone or inside a K-step call. There is no shuffle: the examples are
i.i.d. draws already (the host pipeline shuffles indices because its prepared sources may be
finite and ordered). Positions are uint32: the stream holds 2**32 examples
(MAX_EXAMPLES; config validation refuses num_train_steps x batch_size beyond it).

This stream is NOT the host pipeline's: jax.random is not NumPy's generator, so the examples
differ (same distribution and invariants, tests/test_on_device_data.py); a run must keep one
stream from start to end (config.data.on_device is not a resumable field). Validation and test
splits stay the host ones (NumPy examples at their own index ranges, or prepared array_record).
"""

import zlib

import jax
import jax.numpy as jnp

from attnlab import tasks
from attnlab.data.device_tasks import GENERATORS
from attnlab.tasks.base import check_int

SUPPORTED = tuple(GENERATORS)
MAX_EXAMPLES = 2**32  # stream positions are uint32
# Folded into data_seed's key first, so the data stream shares no key with a model initialised
# from jax.random.key(seed) when seed == data_seed.
_STREAM_TAG = zlib.crc32(b'attnlab.data.on_device train stream')


def supported(task_name: str, params=None) -> bool:
  """True if task_name has a device generator; ValueError on a bad task name or parameter."""
  tasks.spec(task_name, **dict(params or {}))  # ValueError naming what is bad
  return task_name in GENERATORS


def check_supported(task_name: str, params=None):
  """The task's resolved params; ValueError naming the supported tasks if it has no generator."""
  resolved = tasks.spec(task_name, **dict(params or {})).params
  if task_name not in GENERATORS:
    raise ValueError(f'task {task_name!r} has no on-device generator; supported tasks: '
                     f'{", ".join(SUPPORTED)}')
  return resolved


def example_key(data_seed, index):
  """The threefry key of stream position `index` (uint32, may be traced) under data_seed."""
  stream = jax.random.fold_in(jax.random.key(data_seed, impl='threefry2x32'), _STREAM_TAG)
  return jax.random.fold_in(stream, jnp.asarray(index, jnp.uint32))


def examples_fn(task_name: str, params=None):
  """fn(data_seed, indices uint32 (n,)) -> batch of those stream positions (traceable)."""
  resolved = check_supported(task_name, params)
  generator = GENERATORS[task_name]

  def one(data_seed, index):
    return generator(example_key(data_seed, index), resolved)

  return jax.vmap(one, in_axes=(None, 0))


def _check(batch_size, data_seed, shard_index, shard_count):
  batch_size = check_int('batch_size', batch_size, 1)
  data_seed = check_int('data_seed', data_seed, 0, 2**32 - 1)
  shard_count = check_int('shard_count', shard_count, 1)
  shard_index = check_int('shard_index', shard_index, 0, shard_count - 1)
  if batch_size % shard_count:
    raise ValueError(f'batch_size={batch_size} does not divide across shard_count='
                     f'{shard_count} hosts; use a multiple of {shard_count}')
  return batch_size, data_seed, shard_index, shard_count


def step_indices(step, batch_size: int, shard_index: int = 0, shard_count: int = 1):
  """uint32 (batch_size // shard_count,): the stream positions host shard_index reads at `step`."""
  first = (jnp.asarray(step, jnp.int32) - 1).astype(jnp.uint32) * jnp.uint32(batch_size)
  per_host = jnp.arange(batch_size // shard_count, dtype=jnp.uint32)
  return first + jnp.uint32(shard_index) + jnp.uint32(shard_count) * per_host


def make_batch_fn(task_name: str, params, batch_size: int, data_seed: int, shard_index: int = 0,
                  shard_count: int = 1):
  """batch_fn(step) -> this host's train batch of step `step` (1-based; traceable int32).

  ValueError (naming the supported tasks) if task_name has no device generator.
  """
  batch_size, data_seed, shard_index, shard_count = _check(batch_size, data_seed, shard_index,
                                                           shard_count)
  draw = examples_fn(task_name, params)

  def batch_fn(step):
    return draw(data_seed, step_indices(step, batch_size, shard_index, shard_count))

  return batch_fn


def make_k_batches_fn(task_name: str, params, batch_size: int, data_seed: int,
                      shard_index: int = 0, shard_count: int = 1):
  """k_batches_fn(first_step, k) -> the batches of steps first_step .. first_step + k - 1.

  Each value gets a leading axis k (static: jit with static_argnums=1); slice t equals
  make_batch_fn(...)(first_step + t). Inside a lax.scan over steps, calling batch_fn(step) in the
  body does the same without holding k batches at once.
  """
  batch_fn = make_batch_fn(task_name, params, batch_size, data_seed, shard_index, shard_count)

  def k_batches_fn(first_step, k: int):
    steps = jnp.asarray(first_step, jnp.int32) + jnp.arange(k, dtype=jnp.int32)
    return jax.vmap(batch_fn)(steps)

  return k_batches_fn
