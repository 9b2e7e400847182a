"""Tests for attnlab.data: tfds builders, grain sources and pipelines."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from attnlab import data
from attnlab import tasks
from attnlab.data import builders

# Tiny settings so every test prepares and reads in well under a second.
SMALL = {
    'copy': dict(seq_len=12, num_copy=3),
    'adding': dict(seq_len=16),
    'listops': dict(min_len=10, max_len=40, max_depth=4, max_args=4),
    'reverse': dict(max_len=8),
    'parity': dict(seq_len=6, variant='final'),
    'flip_flop': dict(seq_len=8, p_ignore=0.5),
    'mqar': dict(seq_len=12, num_pairs=2, vocab_size=16),
}
SIZES = dict(num_train=12, num_validation=5, num_test=3)
SPLIT_SIZES = dict(train=12, validation=5, test=3)


def assert_records_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    if isinstance(a[key], str):
      assert a[key] == b[key], key
    else:
      assert type(a[key]) is type(b[key]), key
      assert np.asarray(a[key]).dtype == np.asarray(b[key]).dtype, key
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    assert a[key].dtype == b[key].dtype, key
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def run_python(code, timeout=120):
  """Runs `code` in a fresh interpreter; its stdout."""
  result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A data_dir with each task of SMALL prepared with SIZES."""
  root = tmp_path_factory.mktemp('tfds')
  for task, params in SMALL.items():
    data.prepare(task, root, **SIZES, **params)
  return root


# Builders.


def test_fresh_process_reads_what_tasks_generate(data_dir, tmp_path):
  names = {task: builders.builder(task, data_dir, **SIZES, **params)
           for task, params in SMALL.items()}
  names = {task: f'{b.name}/{b.builder_config.name}'
           for task, b in names.items()}
  dump = tmp_path / 'records.pkl'
  run_python(f"""
      import pickle, sys
      import tensorflow_datasets as tfds
      records = {{}}
      for task, name in {names!r}.items():
        for split in ('train', 'validation', 'test'):
          source = tfds.data_source(name, split=split, download=False,
                                    data_dir={str(data_dir)!r})
          records[task, split] = [source[i] for i in range(len(source))]
      assert not any(m.startswith('attnlab') for m in sys.modules), 'imported'
      with open({str(dump)!r}, 'wb') as f:
        pickle.dump(records, f)
  """)
  with open(dump, 'rb') as f:
    records = pickle.load(f)
  for task, params in SMALL.items():
    for split, size in SPLIT_SIZES.items():
      expected = tasks.generate(task, size, seed=0,
                                start=data.split_start(split), **params)
      got = records[task, split]
      assert len(got) == size
      for key, values in expected.items():
        column = [record[key] for record in got]
        if values.dtype == object:  # listops text comes back as utf-8 bytes
          column = [value.decode('utf-8') for value in column]
        np.testing.assert_array_equal(np.asarray(column, values.dtype), values,
                                      err_msg=f'{task} {split} {key}')


def test_train_split_is_the_generated_stream(data_dir):
  source = data.prepared_source('listops', SMALL['listops'], split='train',
                                split_sizes=SPLIT_SIZES, data_dir=data_dir)
  assert len(source) == SIZES['num_train']
  for i in (0, 7, 11):
    assert_records_equal(source[i], tasks.example('listops', i, 0,
                                                  **SMALL['listops']))
  assert isinstance(source[0]['source'], str)


@pytest.mark.parametrize('split', data.SPLITS)
def test_prepared_records_equal_generated_ones(data_dir, split):
  for task, params in SMALL.items():
    prepared = data.prepared_source(task, params, split=split,
                                    split_sizes=SPLIT_SIZES, data_dir=data_dir)
    generated = data.GeneratedSource(task, params, split=split,
                                     size=SPLIT_SIZES[split])
    assert len(prepared) == len(generated) == SPLIT_SIZES[split]
    for i in range(len(prepared)):
      assert_records_equal(prepared[i], generated[i])


def test_preparing_twice_reuses_the_files(data_dir):
  folder = builders.builder('copy', data_dir, **SIZES, **SMALL['copy']).data_dir
  before = {name: os.stat(os.path.join(folder, name)).st_mtime_ns
            for name in os.listdir(folder)}
  again = data.prepare('copy', data_dir, **SIZES, **SMALL['copy'])
  assert again.data_dir == folder
  after = {name: os.stat(os.path.join(folder, name)).st_mtime_ns
           for name in os.listdir(folder)}
  assert after == before
  assert any(name.endswith('array_record-00000-of-00001') for name in after)


def test_config_names_follow_params():
  name = builders.make_config('copy', seq_len=1000, **SIZES).name
  assert name == ('seq_len_1000-num_symbols_8-num_copy_10-seed_0-train_12-'
                  'validation_5-test_3')
  others = [builders.make_config('copy', seq_len=999, **SIZES).name,
            builders.make_config('copy', seq_len=1000, seed=1, **SIZES).name,
            builders.make_config('copy', seq_len=1000, num_train=13).name]
  assert len({name, *others}) == 4


def test_different_seq_len_gets_its_own_directory(tmp_path):
  short = data.prepare('copy', tmp_path, num_train=2, num_validation=1,
                       num_test=1, seq_len=5)
  long = data.prepare('copy', tmp_path, num_train=2, num_validation=1,
                      num_test=1, seq_len=7)
  assert short.data_dir != long.data_dir
  assert os.path.isdir(short.data_dir) and os.path.isdir(long.data_dir)
  source = data.prepared_source('copy', dict(seq_len=5), data_dir=tmp_path,
                                split_sizes=dict(train=2, validation=1, test=1))
  assert source[0]['inputs'].shape == (5 + 2 * 10,)


@pytest.mark.slow
def test_cli_prepares_then_reuses(tmp_path):
  command = [sys.executable, '-m', 'attnlab.data.prepare', '--task=adding',
             '--seq_len=9', '--num_train=4', '--num_validation=2',
             '--num_test=2', f'--data_dir={tmp_path}']
  first = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert first.returncode == 0, first.stderr[-3000:]
  assert '\nwrote attnlab_adding/seq_len_9-seed_0-train_4' in first.stdout
  assert str(tmp_path) in first.stdout and ' s, ' in first.stdout
  second = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert second.stdout.startswith('reused attnlab_adding/seq_len_9-seed_0')


@pytest.mark.slow
@pytest.mark.parametrize('flags, name', [
    (['--task=flip_flop', '--seq_len=8', '--p_ignore=0.5', '--p_read=0.2'],
     'attnlab_flip_flop/seq_len_8-p_ignore_0.5-p_write_None-p_read_0.2-seed_0'),
    (['--task=parity', '--seq_len=5', '--variant=final'],
     'attnlab_parity/seq_len_5-variant_final-min_len_None-seed_0'),
])
def test_cli_reads_float_and_word_params(tmp_path, flags, name):
  # Not imported here: importing attnlab.data.prepare would shadow the function data.prepare.
  command = [sys.executable, '-m', 'attnlab.data.prepare', *flags, '--num_train=2',
             '--num_validation=1', '--num_test=1', f'--data_dir={tmp_path}']
  done = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f'wrote {name}-train_2' in done.stdout


# Sources.


def test_generated_source_is_unlimited_and_deterministic():
  source = data.GeneratedSource('copy', SMALL['copy'], seed=5)
  assert len(source) == data.UNLIMITED == 2**61
  for i in (0, 1, 12345, 10**15, data.UNLIMITED - 1):
    assert_records_equal(source[i],
                         tasks.example('copy', i, 5, **SMALL['copy']))
  again = data.GeneratedSource('copy', SMALL['copy'], seed=5)
  assert_records_equal(source[3], again[3])
  with pytest.raises(IndexError):
    source[data.UNLIMITED]  # pylint: disable=pointless-statement


def test_batch_reads_equal_record_reads():
  source = data.GeneratedSource('adding', SMALL['adding'], seed=3, split='test')
  indices = [7, 0, 10**12, 7]
  for got, i in zip(source.__getitems__(indices), indices):
    assert_records_equal(got, source[i])
  assert_records_equal(tasks.examples('copy', [5], 2, **SMALL['copy'])[0],
                       tasks.example('copy', 5, 2, **SMALL['copy']))
  with pytest.raises(IndexError):
    source.__getitems__([0, data.UNLIMITED])
  with pytest.raises(ValueError, match='index=-1'):
    tasks.examples('copy', [3, -1], **SMALL['copy'])


def test_loader_gives_the_per_record_pipeline_order():
  """Reading batches of indices keeps grain's record order: shuffle, epochs, shards."""
  import grain  # pylint: disable=g-import-not-at-top
  source = data.GeneratedSource('adding', SMALL['adding'], seed=4, size=10)
  reference = grain.MapDataset.source(source).shuffle(seed=6).repeat(2)
  reference = reference[:len(reference) - len(reference) % 2][1::2]
  reference = reference.batch(3, drop_remainder=True,
                              batch_fn=tasks.stack_examples)
  loader = data.make_loader(source, 6, seed=6, num_epochs=2, shard_index=1,
                            shard_count=2)
  got = list(loader)
  assert len(got) == len(reference) == 3
  for a, b in zip(got, reference):
    assert_batches_equal(a, b)


def test_generated_splits_are_disjoint_ranges():
  test = data.GeneratedSource('adding', SMALL['adding'], seed=2, split='test')
  assert_records_equal(test[4], tasks.example(
      'adding', 2 * 2**61 + 4, 2, **SMALL['adding']))
  train = data.GeneratedSource('adding', SMALL['adding'], seed=2)
  assert not np.array_equal(train[4]['inputs'], test[4]['inputs'])


def test_digits_splits_come_from_the_task():
  test = data.GeneratedSource('digits', split='test')
  assert len(test) == tasks.num_examples('digits', split='test')
  assert_records_equal(test[3], tasks.example('digits', 3, split='test'))
  with pytest.raises(ValueError, match="no split 'validation'"):
    data.GeneratedSource('digits', split='validation')


def test_missing_corpus_names_the_searched_folder(tmp_path):
  for name in ('mnist', 'imdb_reviews', 'no_such_corpus'):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)) as error:
      data.tfds_source(name, 'train', data_dir=tmp_path)
    assert 'tfds build' in str(error.value)
  assert not any(tmp_path.iterdir())  # nothing downloaded or created


def test_missing_prepared_task_says_how_to_prepare(tmp_path, monkeypatch):
  monkeypatch.setenv('ATTNLAB_DATA_DIR', str(tmp_path))
  with pytest.raises(FileNotFoundError, match=str(tmp_path)) as error:
    data.prepared_source('copy', dict(seq_len=1000))
  assert ('python -m attnlab.data.prepare --task=copy' in str(error.value)
          and '--seq_len=1000' in str(error.value))


def test_tfds_source_reads_a_prepared_dataset_by_name(data_dir):
  builder = builders.builder('reverse', data_dir, **SIZES, **SMALL['reverse'])
  name = f'attnlab_reverse/{builder.builder_config.name}'
  source = data.tfds_source(name, 'validation', data_dir=data_dir)
  assert_records_equal(source[2], data.GeneratedSource(
      'reverse', SMALL['reverse'], split='validation')[2])
  with pytest.raises(ValueError, match="split='dev'"):
    data.tfds_source(name, 'dev', data_dir=data_dir)


# Pipelines.


def rows(batches):
  """Each example of the batches as bytes of its inputs and targets."""
  return [batch['inputs'][i].tobytes() + batch['targets'][i].tobytes()
          for batch in batches for i in range(len(batch['inputs']))]


def test_hosts_read_disjoint_shards_covering_the_split(data_dir):
  source = data.prepared_source('copy', SMALL['copy'], split='train',
                                split_sizes=SPLIT_SIZES, data_dir=data_dir)
  everything = rows([tasks.stack_examples(
      [source[i] for i in range(len(source))])])
  hosts = [list(data.make_loader(source, 4, seed=3, num_epochs=1,
                                 shard_index=k, shard_count=2,
                                 drop_remainder=False)) for k in range(2)]
  first, second = rows(hosts[0]), rows(hosts[1])
  assert all(len(batch['inputs']) <= 2 for batch in hosts[0] + hosts[1])
  assert not set(first) & set(second)
  assert sorted(first + second) == sorted(everything)
  # With drop_remainder every host gets the same number of full batches.
  counts = [len(list(data.make_loader(source, 4, num_epochs=1, shard_index=k,
                                      shard_count=2))) for k in range(2)]
  assert counts == [3, 3]


def test_one_host_by_default_and_shuffle_covers_each_epoch(data_dir):
  source = data.prepared_source('copy', SMALL['copy'], split_sizes=SPLIT_SIZES,
                                data_dir=data_dir)
  batches = list(data.make_loader(source, 3, seed=1, num_epochs=2))
  assert len(batches) == 8
  epochs = rows(batches[:4]), rows(batches[4:])
  assert sorted(epochs[0]) == sorted(epochs[1])
  assert epochs[0] != epochs[1]  # reshuffled


@pytest.mark.parametrize('kind', ['generated', 'prepared'])
def test_restored_iterator_continues_exactly(data_dir, kind):
  def loader():
    return data.make_dataset('listops', SMALL['listops'], batch_size=5,
                             seed=7, source=kind, data_dir=data_dir,
                             split_sizes=SPLIT_SIZES)[0]
  iterator = iter(loader())
  take(iterator, 3)  # crosses an epoch of the 12 prepared examples
  state = json.loads(json.dumps(iterator.get_state()))
  expected = take(iterator, 4)
  resumed = iter(loader())
  resumed.set_state(state)
  for a, b in zip(take(resumed, 4), expected):
    assert_batches_equal(a, b)


def test_prepared_and_generated_give_the_same_batches(data_dir):
  loaders = [data.make_dataset('adding', SMALL['adding'], batch_size=4, seed=2,
                               source=kind, data_dir=data_dir,
                               split_sizes=SPLIT_SIZES)[0]
             for kind in ('generated', 'prepared')]
  for a, b in zip(*[take(iter(loader), 6) for loader in loaders]):
    assert_batches_equal(a, b)


def test_batches_follow_the_spec():
  loader, spec = data.make_dataset('listops', SMALL['listops'], batch_size=4)
  batch = next(iter(loader))
  assert set(batch) == {'inputs', 'targets', 'mask', 'lengths'}  # no text
  assert batch['inputs'].shape == (4, spec.seq_len)
  assert batch['inputs'].dtype == np.int32
  loader, spec = data.make_dataset('listops', SMALL['listops'], batch_size=4,
                                   keep_text=True)
  text = next(iter(loader))['source']
  assert text.dtype == object and isinstance(text[0], str)


def test_pad_to_pads_steps_and_spec():
  loader, spec = data.make_dataset('reverse', SMALL['reverse'], batch_size=2,
                                   split='validation', pad_to=11)
  batch = next(iter(loader))
  assert spec.seq_len == spec.target_len == 11
  for key in ('source', 'target', 'target_inputs', 'target_mask'):
    assert batch[key].shape == (2, 11), key
  assert not batch['target_mask'][:, 9:].any()
  with pytest.raises(ValueError, match='pad_to=5'):
    data.make_dataset('reverse', SMALL['reverse'], batch_size=2, pad_to=5)


def test_eval_split_is_one_ordered_pass(data_dir):
  loader, _ = data.make_dataset('copy', SMALL['copy'], split='test',
                                batch_size=1, source='prepared',
                                data_dir=data_dir, split_sizes=SPLIT_SIZES)
  batches = list(loader)
  expected = tasks.generate('copy', 3, start=data.split_start('test'),
                            **SMALL['copy'])
  np.testing.assert_array_equal(np.concatenate([b['inputs'] for b in batches]),
                                expected['inputs'])


def test_worker_processes_give_the_same_batches():
  loaders = [data.make_dataset('copy', SMALL['copy'], batch_size=4, seed=1,
                               worker_count=count)[0] for count in (0, 1)]
  iterators = [iter(loader) for loader in loaders]
  for a, b in zip(*[take(iterator, 3) for iterator in iterators]):
    assert_batches_equal(a, b)
  iterators[1].close()


# Bad arguments.


@pytest.mark.parametrize('call, match', [
    (lambda: data.GeneratedSource('copy', dict(seq_len=0)), 'seq_len=0'),
    (lambda: data.GeneratedSource('nope'), "unknown task 'nope'"),
    (lambda: data.GeneratedSource('copy', size=-1), 'size=-1'),
    (lambda: data.GeneratedSource('copy', seed=2**32), r'seed=4294967296'),
    (lambda: data.GeneratedSource('copy', split='dev'), "split='dev'"),
    (lambda: data.make_dataset('copy', batch_size=5, shard_index=0,
                               shard_count=2), 'batch_size=5.*shard_count=2'),
    (lambda: data.make_dataset('copy', batch_size=0), 'batch_size=0'),
    (lambda: data.make_dataset('copy', batch_size=2, shard_index=2,
                               shard_count=2), r'shard_index=2.*\[0, 1\]'),
    (lambda: data.make_dataset('copy', batch_size=2, source='disk'),
     "source='disk'"),
    (lambda: data.make_dataset('adding', dict(seq_len=-3), batch_size=2),
     'seq_len=-3'),
    (lambda: data.prepare('copy', num_train=-1), 'num_train=-1'),
    (lambda: data.prepare('copy', num_test=-2), 'num_test=-2'),
    (lambda: data.prepare('digits'), "task='digits' cannot be prepared"),
    (lambda: data.prepare('nope'), "task='nope'"),
    (lambda: data.make_loader(data.GeneratedSource('copy'), 2, num_epochs=0),
     'num_epochs=0'),
])
def test_bad_arguments_raise_value_error(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_prepare_is_the_function():
  assert data.prepare is builders.prepare
  assert set(builders.BUILDERS) == set(data.PREPARABLE)
  assert builders.BUILDERS['copy'].name == 'attnlab_copy'
