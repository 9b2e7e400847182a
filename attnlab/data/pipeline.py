"""grain pipelines: shuffled, sharded, batched, resumable.

  make_loader(source, batch_size, *, seed=0, shuffle=True, num_epochs=None,
              shard_index=None, shard_count=None, drop_remainder=True,
              pad_to=None, keep_text=False, worker_count=0, read_threads=8,
              prefetch=16) -> grain.IterDataset
  make_dataset(task, params=None, *, split='train', batch_size, seed=0,
               data_seed=0, source='generated', data_dir=None,
               split_sizes=None, shuffle=None, num_epochs=None, pad_to=None,
               **make_loader_options) -> (grain.IterDataset, TaskSpec)

`it = iter(loader)` yields per-host batches: dicts of NumPy arrays with a
leading axis batch_size // shard_count and the task's keys (see its
module), ready for jax.make_array_from_process_local_data. String keys
(listops `source`) are dropped unless keep_text=True, which keeps them as
object arrays (not for the device). `it.get_state()` is a small JSON-able
dict; `it.set_state(state)` on an iterator of the same loader makes it
yield exactly the batches the saved one would have yielded next.

Order of operations on record indices (all of it deterministic):
  shuffle   a seeded permutation, a new one each epoch (grain index_shuffle)
  repeat    num_epochs passes; None: forever (unlimited sources: no repeat)
  shard     host k of n takes stream positions k, k + n, ... (disjoint, and
            together the whole stream); with drop_remainder the stream is
            first cut to a multiple of n so every host gets as many
  batch     batch_size // n consecutive records per host; batches are made
            before the worker processes split the work, so worker_count
            and read_threads never change the batches.
"""

import dataclasses
import functools
from typing import Optional

from absl import flags
import grain
import jax
import numpy as np

from attnlab import tasks
from attnlab.data import common
from attnlab.data import sources as sources_lib
from attnlab.tasks.base import check_int

SOURCES = ('generated', 'prepared')


def prepare_example(example: dict, pad_to: Optional[int] = None,
                    keep_text: bool = False) -> dict:
  """Drops str values unless keep_text; zero-pads axis 0 of arrays to pad_to.

  Padding uses 0, which is PAD (or blank) in every token task and a zero
  mask, so padded steps never count; lengths are unchanged.
  """
  out = {}
  for key, value in example.items():
    if isinstance(value, str):
      if keep_text:
        out[key] = value
      continue
    if pad_to is not None and np.ndim(value) >= 1:
      length = value.shape[0]
      if length > pad_to:
        raise ValueError(f'pad_to={pad_to} is shorter than {key!r} '
                         f'(length {length})')
      widths = [(0, pad_to - length)] + [(0, 0)] * (value.ndim - 1)
      value = np.pad(value, widths)
    out[key] = value
  return out


def read_batch(source, indices, pad_to: Optional[int] = None,
               keep_text: bool = False) -> dict:
  """Records `indices` of `source`, prepared (see prepare_example) and stacked."""
  indices = [int(i) for i in indices]
  getitems = getattr(source, '__getitems__', None)
  records = getitems(indices) if getitems else [source[i] for i in indices]
  return tasks.stack_examples([prepare_example(r, pad_to, keep_text)
                               for r in records])


def _shards(shard_index, shard_count):
  """(index, count); defaults to this JAX process among all of them."""
  count = jax.process_count() if shard_count is None else shard_count
  count = check_int('shard_count', count, 1)
  index = jax.process_index() if shard_index is None else shard_index
  return check_int('shard_index', index, 0, count - 1), count


def make_loader(source, batch_size: int, *, seed: int = 0,
                shuffle: bool = True, num_epochs: Optional[int] = None,
                shard_index: Optional[int] = None,
                shard_count: Optional[int] = None,
                drop_remainder: bool = True, pad_to: Optional[int] = None,
                keep_text: bool = False, worker_count: int = 0,
                read_threads: int = 8,
                prefetch: int = 16) -> grain.IterDataset:
  """A resumable grain pipeline of per-host batches over `source`.

  Args:
    source: a random-access source (len and getitem), e.g. GeneratedSource.
    batch_size: global batch size, split evenly over the shard_count hosts.
    seed: shuffle seed in [0, 2**32 - 1].
    shuffle: shuffle records (anew each epoch).
    num_epochs: passes over a finite source; None: forever.
    shard_index, shard_count: this host and the number of hosts; default
      jax.process_index() and jax.process_count().
    drop_remainder: give every host the same number of records and drop the
      last partial batch (keep True for multi-host training steps).
    pad_to: zero-pad axis 0 of every array to this length (see
      prepare_example); None: keep the task's length.
    keep_text: keep str keys as object arrays instead of dropping them.
    worker_count: grain worker processes (0: read in this process). Workers
      unpickle the source, so its class must live in an importable module.
    read_threads: threads reading and batching in each process.
    prefetch: batches buffered in each process.
  """
  batch_size = check_int('batch_size', batch_size, 1)
  shard_index, shard_count = _shards(shard_index, shard_count)
  if batch_size % shard_count:
    raise ValueError(
        f'batch_size={batch_size} does not divide across shard_count='
        f'{shard_count} hosts; use a multiple of {shard_count}')
  seed = common.check_seed(seed)
  if num_epochs is not None:
    num_epochs = check_int('num_epochs', num_epochs, 1)
  if pad_to is not None:
    pad_to = check_int('pad_to', pad_to, 1)
  worker_count = check_int('worker_count', worker_count, 0)
  if len(source) == 0:  # pylint: disable=g-explicit-length-test
    raise ValueError(f'source {source!r} has no records')
  prepare_example(source[0], pad_to)  # ValueError now if pad_to is too short

  # The stream is built over record *indices*, and a batch of indices is read
  # and stacked in one call (source.__getitems__): grain's per-element work
  # then costs per batch, not per record. The order is the one a per-record
  # pipeline over the same source would give.
  ds = grain.MapDataset.range(len(source))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  if num_epochs != 1 and len(source) < common.UNLIMITED:
    ds = ds.repeat(num_epochs)
  if drop_remainder:
    ds = ds[:len(ds) - len(ds) % shard_count]
  ds = ds[shard_index::shard_count]
  ds = ds.batch(batch_size // shard_count, drop_remainder=drop_remainder,
                batch_fn=np.asarray)
  ds = ds.map(functools.partial(read_batch, source, pad_to=pad_to,
                                keep_text=keep_text))
  loader = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=check_int('read_threads', read_threads, 0),
      prefetch_buffer_size=check_int('prefetch', prefetch, 1)))
  if worker_count:
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags (defaults ok)
      flags.FLAGS.mark_as_parsed()
    loader = loader.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=worker_count))
  return loader


def make_dataset(task: str, params: Optional[dict] = None, *,
                 split: str = 'train', batch_size: int, seed: int = 0,
                 data_seed: int = 0, source: str = 'generated', data_dir=None,
                 split_sizes: Optional[dict] = None,
                 shuffle: Optional[bool] = None,
                 num_epochs: Optional[int] = None, pad_to: Optional[int] = None,
                 **loader_options):
  """The batches of a task's split and its TaskSpec; what a trainer calls.

  Args:
    task: one of attnlab.tasks.TASKS.
    params: task params (see the task module); None: defaults.
    split: 'train', 'validation' or 'test'.
    batch_size: global batch size (see make_loader).
    seed: shuffle seed, in [0, 2**32 - 1].
    data_seed: which examples (the tasks' seed), in [0, 2**32 - 1]; keep it
      fixed to compare runs on the same data.
    source: 'generated' draws examples on the fly (unlimited unless
      split_sizes[split] is given); 'prepared' reads the config written by
      builders.prepare with the same params, data_seed and split_sizes (the
      same records) and raises FileNotFoundError when it is missing.
    data_dir: for 'prepared'; None: $ATTNLAB_DATA_DIR or ~/tensorflow_datasets.
    split_sizes: {split: number of examples}, e.g. ListOps as in LRA:
      dict(train=96_000, validation=2_000, test=2_000).
    shuffle: None: shuffle the train split only.
    num_epochs: None: forever for train, one pass for validation and test.
    pad_to: see make_loader; the returned spec's lengths follow it.
    **loader_options: the other make_loader arguments (shard_index,
      shard_count, drop_remainder, keep_text, worker_count, ...).

  Returns:
    (loader, spec): `iter(loader)` gives batches; spec is a TaskSpec.
  """
  if source not in SOURCES:
    raise ValueError(f'source={source!r} is invalid; expected one of {SOURCES}')
  common.check_split(split)
  if source == 'generated':
    size = (split_sizes or {}).get(split)
    records = sources_lib.GeneratedSource(task, params, seed=data_seed,
                                          split=split, size=size)
    resolved = records.params
  else:
    records = sources_lib.prepared_source(
        task, params, split=split, seed=data_seed, split_sizes=split_sizes,
        data_dir=data_dir)
    resolved = tasks.spec(task, **(params or {})).params
  spec = tasks.spec(task, **resolved)
  if pad_to is not None:
    spec = dataclasses.replace(
        spec, seq_len=pad_to,
        target_len=None if spec.target_len is None else pad_to)
  if shuffle is None:
    shuffle = split == 'train'
  if num_epochs is None and split != 'train':
    num_epochs = 1
  loader = make_loader(records, batch_size, seed=seed, shuffle=shuffle,
                       num_epochs=num_epochs, pad_to=pad_to, **loader_options)
  return loader, spec
