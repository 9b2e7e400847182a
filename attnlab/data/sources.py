"""grain random-access sources: task streams drawn on the fly, prepared data.

  GeneratedSource(task, params=None, *, seed=0, split='train', size=None)
      record i = tasks.example(task, start + i, seed, **params), where start
      is the split's first index (0 for train, see common.py); len() is
      `size` or, for unlimited tasks, UNLIMITED = 2**61 (fresh examples
      without end; a run reading 1e6 examples a second takes 73,000 years to
      reach it). For digits (finite) the split's own images.
  prepared_source(task, params=None, *, split='train', seed=0,
                  split_sizes=None, data_dir=None)  -> TfdsSource
      the split of a config written by builders.prepare; record i equals
      GeneratedSource(...)[i] with the same arguments.
  tfds_source(name, split, data_dir=None)  -> TfdsSource
      any tfds dataset prepared as array_record under data_dir: real corpora
      ('mnist', 'imdb_reviews', 'glue/sst2') or 'attnlab_copy/<config>'.

Records are dicts of NumPy arrays, NumPy scalars and str (text features).
Missing data raises FileNotFoundError naming the folder searched and how to
prepare it; nothing is downloaded, ever.
"""

import operator
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from attnlab import tasks
from attnlab.data import builders
from attnlab.data import common
from attnlab.tasks.base import check_int


class GeneratedSource:
  """Examples of a task drawn on demand; deterministic in (seed, index).

  Attributes:
    task: task name.
    params: resolved task params.
    seed: data seed in [0, 2**32 - 1].
    start: task index of record 0.
    size: number of records.
  """

  def __init__(self, task: str, params: Optional[dict] = None, *,
               seed: int = 0, split: str = 'train',
               size: Optional[int] = None):
    self.task = task
    self.params, self.start, available = common.task_split(task, params, split)
    self.split = split
    self.seed = common.check_seed(seed)
    self.size = available if size is None else check_int('size', size, 0,
                                                          available)

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, index: int) -> dict:
    index = operator.index(index)
    if not 0 <= index < self.size:
      raise IndexError(f'index {index} out of range [0, {self.size})')
    return tasks.example(self.task, self.start + index, self.seed,
                         **self.params)

  def __getitems__(self, indices) -> list:
    """Records `indices` (a batch read: the arguments are checked once)."""
    indices = [operator.index(i) for i in indices]
    if indices and not (0 <= min(indices) and max(indices) < self.size):
      raise IndexError(f'indices {min(indices)}..{max(indices)} out of range '
                       f'[0, {self.size})')
    return tasks.examples(self.task, [self.start + i for i in indices],
                          self.seed, **self.params)

  def __repr__(self):
    return (f'GeneratedSource({self.task!r}, {self.params}, seed={self.seed}, '
            f'split={self.split!r}, size={self.size})')


def _convert(value, feature):
  """A tfds record value as attnlab.tasks gives it (str, NumPy types)."""
  if isinstance(feature, tfds.features.FeaturesDict):
    return {key: _convert(value[key], feature[key]) for key in value}
  if isinstance(feature, tfds.features.Text):
    return value.decode('utf-8') if isinstance(value, bytes) else value
  if isinstance(value, np.ndarray):
    return value
  return np.dtype(feature.np_dtype).type(value)  # Python number -> NumPy


class TfdsSource:
  """A tfds data source whose records are converted like GeneratedSource's."""

  def __init__(self, data_source, features, name: str = ''):
    self.data_source = data_source
    self.features = features
    self.name = name

  def __len__(self) -> int:
    return len(self.data_source)

  def __getitem__(self, index: int) -> dict:
    return _convert(self.data_source[index], self.features)

  def __getitems__(self, indices):
    return [_convert(record, self.features)
            for record in self.data_source.__getitems__(indices)]

  def __repr__(self):
    return f'TfdsSource({self.name!r}, {len(self)} records)'


def _from_builder(builder, split, name, how_to_prepare):
  root = builder.data_dir_root
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'{name!r} is not prepared in data_dir {root} (looked for '
        f'{builder.data_path}/dataset_info.json). Nothing is downloaded; '
        f'{how_to_prepare}')
  if split not in builder.info.splits:
    raise ValueError(f'split={split!r} is not in {name!r}; valid splits: '
                     f'{", ".join(builder.info.splits)}')
  file_format = builder.info.file_format
  if file_format.value not in ('array_record', 'parquet'):
    raise ValueError(f'{name!r} in {builder.data_path} is {file_format.value}, '
                     'which has no random access; prepare it again with '
                     f'file_format=array_record. {how_to_prepare}')
  return TfdsSource(builder.as_data_source(split=split), builder.info.features,
                    name=f'{name}:{split}')


def tfds_source(name: str, split: str, data_dir=None) -> TfdsSource:
  """Split `split` of the tfds dataset `name` prepared under `data_dir`."""
  root = common.data_dir(data_dir)
  how = (f'on a machine with network run `tfds build {name} '
         f'--file_format=array_record --data_dir={root}` (or prepare it there '
         f'and copy the folder {name.split("/")[0]} into {root}); for attnlab '
         f'tasks run `python -m attnlab.data.prepare --data_dir={root} ...`.')
  try:
    builder = tfds.builder(name, data_dir=root)
  except ValueError as error:  # unknown name or config, nothing on disk
    reason = str(error).split('\n')[0]
    raise FileNotFoundError(
        f'tfds dataset {name!r} is not prepared in data_dir {root} (looked '
        f'under {root}/{name.split(":")[0]}; tfds: {reason}). Nothing is '
        f'downloaded; {how}') from None
  return _from_builder(builder, split, name, how)


def prepared_source(task: str, params: Optional[dict] = None, *,
                    split: str = 'train', seed: int = 0,
                    split_sizes: Optional[dict] = None,
                    data_dir=None) -> TfdsSource:
  """Split `split` of `task`'s config written by builders.prepare.

  Args:
    task, params, seed: as for GeneratedSource.
    split: 'train', 'validation' or 'test'.
    split_sizes: {split: number of examples} of the config; missing splits
      take builders.DEFAULT_SIZES.
    data_dir: root folder; None: $ATTNLAB_DATA_DIR or ~/tensorflow_datasets.
  """
  common.check_split(split)
  sizes = dict(split_sizes or {})
  for key in sizes:
    common.check_split(key)
  sizes = {f'num_{key}': value for key, value in sizes.items()}
  builder = builders.builder(task, data_dir, seed=seed, **sizes,
                             **(params or {}))
  config = builder.builder_config
  flags = ' '.join([f'--task={task}', f'--data_dir={builder.data_dir_root}',
                    f'--seed={config.seed}']
                   + [f'--num_{s}={n}' for s, n in config.split_sizes.items()]
                   + [f'--{k}={v}' for k, v in config.params.items()])
  how = f'run `python -m attnlab.data.prepare {flags}`.'
  name = f'{builder.name}/{config.name}'
  if config.split_sizes[split] == 0:
    raise ValueError(f'split={split!r} of {name!r} has 0 examples')
  return _from_builder(builder, split, name, how)
