"""TFDS builders for the generated tasks, written as array_record files.

  prepare(task, data_dir=None, *, seed=0, num_train=10_000,
          num_validation=1_000, num_test=1_000, **params) -> prepared builder
  builder(task, data_dir=None, **same)  -> builder (prepared or not)
  make_config(task, **same)             -> TaskConfig
  dataset_name(task)                    -> 'attnlab_<task>'
  BUILDERS                              task name -> builder class

One builder class per unlimited task (tfds names attnlab_copy,
attnlab_adding, ...; `digits` is already finite and is read directly).
A config holds the resolved task params, the seed and the split sizes, and
is named from them, so different params never share a directory (a parameter
added later is left out of the name at the value that keeps the old examples,
`tasks.added_params`, e.g. adding's variant='le2015'):

  <data_dir>/attnlab_copy/seq_len_1000-num_symbols_8-num_copy_10-seed_0-
      train_10000-validation_1000-test_1000/1.0.0/

Split s with n examples holds examples 0 .. n - 1 of split s as defined in
`attnlab.data.common` (train: tasks.example(task, i, seed, **params);
validation and test: disjoint index ranges of the same seed). Records are
written in index order (no tfds shuffling), so record i is example i.

Features: each batch key of the task (see its module) with the shape and
dtype of one example; arrays stored as raw bytes, strings (listops
`source`) as Text. Read back with tfds.data_source(name, split=...,
data_dir=...), even in a process that never imported this module; it gives
Text as bytes and scalars as Python numbers (sources.TfdsSource converts).

Preparing a config that is already on disk reuses its files. Nothing is
downloaded.
"""

import dataclasses
import re

import numpy as np
import tensorflow_datasets as tfds

from attnlab import tasks
from attnlab.data import common
from attnlab.tasks.base import check_int

DATA_VERSION = '1.0.0'
DEFAULT_SIZES = dict(num_train=10_000, num_validation=1_000, num_test=1_000)
PREPARABLE = tuple(name for name in tasks.TASKS
                   if tasks.num_examples(name) is None)
_NAME_PART = re.compile(r'^[\w.+]+$')  # tfds config names allow [\w+.-]


@dataclasses.dataclass(eq=False)
class TaskConfig(tfds.core.BuilderConfig):
  """A task, its resolved params, the seed and {split: number of examples}."""
  task: str = ''
  params: dict = dataclasses.field(default_factory=dict)
  seed: int = 0
  split_sizes: dict = dataclasses.field(default_factory=dict)


def dataset_name(task: str) -> str:
  """The tfds name of a task's builder, e.g. 'attnlab_copy'."""
  return 'attnlab_' + task


def make_config(task: str, *, seed: int = 0,
                num_train: int = DEFAULT_SIZES['num_train'],
                num_validation: int = DEFAULT_SIZES['num_validation'],
                num_test: int = DEFAULT_SIZES['num_test'],
                **params) -> TaskConfig:
  """The config of `task` with `params`; ValueError on any bad argument."""
  if task not in PREPARABLE:
    raise ValueError(f'task={task!r} cannot be prepared; valid tasks: '
                     f'{", ".join(PREPARABLE)} (finite tasks such as digits '
                     'are read directly)')
  resolved = tasks.spec(task, **params).params
  split_sizes = dict(
      train=check_int('num_train', num_train, 1),
      validation=check_int('num_validation', num_validation, 0),
      test=check_int('num_test', num_test, 0))
  seed = common.check_seed(seed)
  added = tasks.added_params(task)  # at their old value: the name of before
  parts = [f'{key}_{value}' for key, value in resolved.items()
           if not (key in added and added[key] == value)]
  parts += [f'seed_{seed}'] + [f'{s}_{n}' for s, n in split_sizes.items()]
  for part in parts:
    if not _NAME_PART.match(part):
      raise ValueError(f'parameter {part!r} of task {task!r} cannot be part '
                       'of a tfds config name (use letters, digits, _ . +)')
  return TaskConfig(
      name='-'.join(parts), version=DATA_VERSION, task=task, params=resolved,
      seed=seed, split_sizes=split_sizes,
      description=f'attnlab.tasks {task!r} with {resolved}, seed {seed}, '
                  f'split sizes {split_sizes}')


def _feature(value):
  if isinstance(value, str):
    return tfds.features.Text()
  value = np.asarray(value)
  if value.ndim == 0:
    return tfds.features.Scalar(dtype=value.dtype)
  return tfds.features.Tensor(shape=value.shape, dtype=value.dtype,
                              encoding=tfds.features.Encoding.BYTES)


class _TaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Writes the splits of `TASK` (see the module docstring)."""
  TASK = ''
  VERSION = tfds.core.Version(DATA_VERSION)
  RELEASE_NOTES = {DATA_VERSION: 'First release.'}
  # No download checksums (nothing is downloaded). Setting this also skips
  # tfds' lookup of the code path, which needs importlib_resources (missing
  # here) for classes in installed packages.
  url_infos = None

  def _info(self):
    config = self.builder_config
    first = tasks.example(config.task, 0, config.seed, **config.params)
    features = {key: _feature(value) for key, value in first.items()}
    return tfds.core.DatasetInfo(
        builder=self, description=config.description,
        features=tfds.features.FeaturesDict(features),
        disable_shuffling=True,  # record i is example i
        metadata=tfds.core.MetadataDict(
            task=config.task, params=config.params, seed=config.seed,
            split_sizes=config.split_sizes,
            split_starts={s: common.split_start(s) for s in common.SPLITS}))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    return {split: self._generate_examples(split, size)
            for split, size in self.builder_config.split_sizes.items() if size}

  def _generate_examples(self, split, size):
    config = self.builder_config
    start = common.split_start(split)
    for i in range(size):
      yield i, tasks.example(config.task, start + i, config.seed,
                             **config.params)


class AttnlabCopy(_TaskBuilder):
  """Copy memory as tfds `attnlab_copy`."""
  TASK = 'copy'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabAdding(_TaskBuilder):
  """Adding problem as tfds `attnlab_adding`."""
  TASK = 'adding'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabSelectiveCopy(_TaskBuilder):
  """Selective copying as tfds `attnlab_selective_copy`."""
  TASK = 'selective_copy'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabAssociativeRecall(_TaskBuilder):
  """Associative recall as tfds `attnlab_associative_recall`."""
  TASK = 'associative_recall'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabTemporalOrder(_TaskBuilder):
  """Temporal order as tfds `attnlab_temporal_order`."""
  TASK = 'temporal_order'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabListops(_TaskBuilder):
  """ListOps as tfds `attnlab_listops`."""
  TASK = 'listops'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabReverse(_TaskBuilder):
  """Reverse a sequence as tfds `attnlab_reverse`."""
  TASK = 'reverse'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabSort(_TaskBuilder):
  """Sort a sequence as tfds `attnlab_sort`."""
  TASK = 'sort'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabParity(_TaskBuilder):
  """Parity as tfds `attnlab_parity`."""
  TASK = 'parity'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabFlipFlop(_TaskBuilder):
  """Flip-flop language as tfds `attnlab_flip_flop`."""
  TASK = 'flip_flop'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


class AttnlabMqar(_TaskBuilder):
  """Multi-query associative recall as tfds `attnlab_mqar`."""
  TASK = 'mqar'
  BUILDER_CONFIGS = [make_config(TASK)]  # the defaults


BUILDERS = {cls.TASK: cls for cls in (
    AttnlabCopy,
    AttnlabAdding,
    AttnlabSelectiveCopy,
    AttnlabAssociativeRecall,
    AttnlabTemporalOrder,
    AttnlabListops,
    AttnlabReverse,
    AttnlabSort,
    AttnlabParity,
    AttnlabFlipFlop,
    AttnlabMqar,
)}


def builder(task: str, data_dir=None, **params_and_sizes):
  """The builder of `task`'s config in `data_dir` (see `make_config`)."""
  config = make_config(task, **params_and_sizes)
  return BUILDERS[task](config=config, data_dir=common.data_dir(data_dir),
                        file_format='array_record')


def prepare(task: str, data_dir=None, **params_and_sizes):
  """Writes `task`'s config to `data_dir` unless it is there; the builder.

  Args:
    task: one of BUILDERS.
    data_dir: root folder; None: $ATTNLAB_DATA_DIR or ~/tensorflow_datasets.
    **params_and_sizes: seed, num_train, num_validation, num_test (see
      DEFAULT_SIZES) and the task's params (see its module).
  """
  prepared = builder(task, data_dir, **params_and_sizes)
  prepared.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False))
  return prepared
