"""Data for the tasks: tfds builders (array_record) and grain pipelines.

  make_dataset(task, params=None, *, split='train', batch_size, seed=0,
               data_seed=0, source='generated' | 'prepared', data_dir=None,
               split_sizes=None, ...)          -> (grain.IterDataset, TaskSpec)
  make_loader(source, batch_size, *, seed, shuffle, num_epochs, shard_index,
              shard_count, drop_remainder, pad_to, keep_text, worker_count,
              ...)                               -> grain.IterDataset
  GeneratedSource(task, params=None, *, seed=0, split='train', size=None)
  prepared_source(task, params=None, *, split, seed, split_sizes, data_dir)
  tfds_source(name, split, data_dir=None)      real corpora, prepared locally
  prepare(task, data_dir=None, *, seed=0, num_train=10_000,
          num_validation=1_000, num_test=1_000, **params) -> tfds builder

A trainer:

  loader, spec = data.make_dataset('copy', dict(seq_len=1000), batch_size=64,
                                   seed=0)
  it = iter(loader)                      # per-host batches of NumPy arrays
  batch = next(it)                       # inputs, targets, mask, lengths
  state = it.get_state()                 # save with the checkpoint ...
  it.set_state(state)                    # ... and restore on resume

Splits (common.py): train, validation and test are disjoint index ranges of
the same seed; train example i is attnlab.tasks.example(task, i, seed).
Prepared data (`python -m attnlab.data.prepare`) holds the same records.
data_dir defaults to $ATTNLAB_DATA_DIR, else ~/tensorflow_datasets.
"""

from attnlab.data.builders import BUILDERS, DEFAULT_SIZES, PREPARABLE, prepare
from attnlab.data.common import SPLITS, UNLIMITED, data_dir, split_start
from attnlab.data.pipeline import make_dataset, make_loader
from attnlab.data.sources import (GeneratedSource, TfdsSource, prepared_source,
                                  tfds_source)

__all__ = ['BUILDERS', 'DEFAULT_SIZES', 'GeneratedSource', 'PREPARABLE',
           'SPLITS', 'TfdsSource', 'UNLIMITED', 'data_dir', 'make_dataset',
           'make_loader', 'prepare', 'prepared_source', 'split_start',
           'tfds_source']
