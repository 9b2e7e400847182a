"""The training stream drawn on the device (attnlab.data.on_device) against the NumPy generators.

Per supported task and a few parameter sets: thousands of device examples (jitted, vmapped over
examples and over steps) satisfy every invariant of the task's definition, checked here without
any generator (the same checks run on NumPy's examples first, so they are the definition's), and
match the NumPy generator's distribution (two-sample chi-square on counts, Kolmogorov-Smirnov on
reals; fixed seeds, p > 1e-4). Then: keys, shapes and dtypes equal the host pipeline's train
batch; determinism and resumability from the step alone; the host sharding; config.data.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.marks import fast_only
from scipy import stats

from attnlab import data, tasks
from attnlab.data import on_device
from attnlab.train import base_config, config as cfg_lib, validate

N_PER_STEP, STEPS = 512, 4  # 2048 device examples per case, from 4 steps of one K-step call
N = N_PER_STEP * STEPS
P_MIN = 1e-4

CASES = {
    'adding_le2015': ('adding', dict(seq_len=20)),
    'adding_h97': ('adding', dict(seq_len=40, variant='hochreiter1997')),
    'copy': ('copy', dict(seq_len=12, num_symbols=5, num_copy=4)),
    'parity_running': ('parity', dict(seq_len=12, min_len=3)),
    'parity_final': ('parity', dict(seq_len=9, variant='final')),
    'flip_flop': ('flip_flop', dict(seq_len=40, p_ignore=0.5)),
    'flip_flop_write': ('flip_flop', dict(seq_len=30, p_ignore=0.5, p_write=0.1)),
    'selective_copy': ('selective_copy', dict(seq_len=20, num_copy=5, num_symbols=6)),
    'mqar': ('mqar', dict(seq_len=30, num_pairs=4, vocab_size=24, power_a=0.01)),
    'mqar_queries': ('mqar', dict(seq_len=40, num_pairs=6, num_queries=3, vocab_size=32,
                                  power_a=1.0)),
    'associative_recall': ('associative_recall', dict(num_pairs=5, num_keys=12, num_values=7)),
    'temporal_order': ('temporal_order', dict(seq_len=30)),
}


@pytest.fixture(scope='module', params=fast_only(sorted(CASES), keep=('adding_h97', 'copy', 'mqar')))
def case(request):
  """(name, params, device sample of N, NumPy sample of N, host train batch)."""
  name, params = CASES[request.param]
  k_batches = jax.jit(on_device.make_k_batches_fn(name, params, N_PER_STEP, data_seed=7),
                      static_argnums=1)
  stacked = jax.device_get(k_batches(1, STEPS))
  device = {k: v.reshape((N,) + v.shape[2:]) for k, v in stacked.items()}
  host = tasks.generate(name, N, seed=1, **params)
  loader, _ = data.make_dataset(name, params, split='train', batch_size=N_PER_STEP, seed=0,
                                data_seed=0, shard_index=0, shard_count=1)
  return name, tasks.spec(name, **params).params, device, host, stacked, next(iter(loader))


# --- invariants: the task's definition, read off the batch ----------------------------------------

def check_adding(b, p):
  x, m, lengths = b['inputs'][..., 0], b['inputs'][..., 1], b['lengths']
  steps, n = p['seq_len'], len(x)
  assert (b['mask'] == 1).all()
  if p['variant'] == 'le2015':
    assert ((x >= 0) & (x < 1)).all() and (lengths == steps).all()
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert (m[:, :steps // 2].sum(1) == 1).all() and (m[:, steps // 2:].sum(1) == 1).all()
    want = np.where(m == 1, x, 0).sum(1, dtype=np.float32)
    np.testing.assert_allclose(b['targets'], want, rtol=0, atol=1e-6)
    return
  padded, rows, plus = steps + steps // 10, np.arange(n), m == 1.0
  assert x.shape[1] == padded and ((lengths >= steps) & (lengths <= padded)).all()
  assert (np.abs(x) <= 1).all()
  valid = np.arange(padded)[None] < lengths[:, None]
  assert (x[~valid] == 0).all() and (m[~valid] == 0).all()
  assert (plus.sum(1) == 2).all()
  pos = np.sort(np.argwhere(plus)[:, 1].reshape(n, 2), axis=1)
  assert (pos[:, 0] < adding_first_steps(steps)).all() and (pos[:, 1] <= steps // 2 - 1).all()
  first, final = m[:, 0], m[rows, lengths - 1]
  assert np.all(np.where(plus[:, 0], first == 1, first == -1))
  assert np.all(np.where(plus[rows, lengths - 1], final == 1, final == -1))
  others = m.copy()
  others[:, 0], others[rows, lengths - 1] = 0, 0
  assert ((others == 0) | (others == 1)).all()
  assert (x[plus[:, 0], 0] == 0).all() and (x[~plus[:, 0], 0] != 0).all()  # "X1 = 0"
  want = 0.5 + np.where(plus, x, 0).astype(np.float64).sum(1) / 4
  np.testing.assert_allclose(b['targets'], want, rtol=0, atol=1e-6)
  assert ((b['targets'] >= 0) & (b['targets'] <= 1)).all()


def adding_first_steps(steps):
  return min(10, steps)


def check_copy(b, p):
  delay, k, s = p['seq_len'], p['num_copy'], p['num_symbols']
  x, y = b['inputs'], b['targets']
  symbols = x[:, :k]
  assert ((symbols >= 1) & (symbols <= s)).all()
  assert (x[:, k:k + delay - 1] == 0).all() and (x[:, k + delay - 1] == s + 1).all()
  assert (x[:, k + delay:] == 0).all() and (y[:, :-k] == 0).all()
  np.testing.assert_array_equal(y[:, -k:], symbols)
  assert (b['mask'] == 1).all() and (b['lengths'] == delay + 2 * k).all()


def check_parity(b, p):
  x, lengths, steps = b['inputs'], b['lengths'], p['seq_len']
  low = p['min_len'] or steps
  assert ((lengths >= low) & (lengths <= steps)).all()
  valid = np.arange(steps)[None] < lengths[:, None]
  assert ((x[valid] == 1) | (x[valid] == 2)).all() and (x[~valid] == 0).all()
  prefix = np.cumsum(np.where(valid, x - 1, 0), axis=1) % 2
  if p['variant'] == 'running':
    np.testing.assert_array_equal(b['targets'], np.where(valid, prefix, 0))
    np.testing.assert_array_equal(b['mask'], valid.astype(np.float32))
  else:
    np.testing.assert_array_equal(b['targets'], prefix[:, -1])
    assert (b['mask'] == 1).all()


def check_flip_flop(b, p):
  x, y, mask = b['inputs'], b['targets'], b['mask']
  ops, shown = x[:, 0::2], x[:, 1::2]
  assert (ops[:, 0] == 1).all() and (ops[:, -1] == 3).all() and np.isin(ops, (1, 2, 3)).all()
  reads = ops == 3
  assert (shown[reads] == 6).all() and np.isin(shown[~reads], (4, 5)).all()
  np.testing.assert_array_equal(mask[:, 1::2], reads.astype(np.float32))
  assert (mask[:, 0::2] == 0).all() and (y[mask == 0] == 0).all()
  for row_ops, row_shown, row_y in zip(ops, shown, y[:, 1::2]):  # replay the memory pair by pair
    memory = None
    for op, bit, target in zip(row_ops, row_shown, row_y):
      if op == 1:
        memory = bit - 4
      if op == 3:
        assert target == memory
  assert (b['lengths'] == p['seq_len']).all()


def check_selective_copy(b, p):
  region, k, s = p['seq_len'], p['num_copy'], p['num_symbols']
  x, y, mask = b['inputs'], b['targets'], b['mask']
  scattered = x[:, :region]
  assert ((scattered == 0).sum(1) == region - k).all() and (scattered <= s).all()
  np.testing.assert_array_equal(y[:, -k:], scattered[scattered != 0].reshape(-1, k))  # in order
  assert (x[:, region] == s + 1).all() and (x[:, region + 1:] == 0).all()
  assert (mask[:, -k:] == 1).all() and (mask[:, :-k] == 0).all() and (y[:, :-k] == 0).all()
  assert (b['lengths'] == region + 1 + k).all()


def check_mqar(b, p):
  steps, pairs, vocab = p['seq_len'], p['num_pairs'], p['vocab_size']
  queries = p['num_queries'] or pairs
  x, y, mask = b['inputs'], b['targets'], b['mask']
  assert ((x >= 1) & (x < vocab)).all()
  keys, values = x[:, 0:2 * pairs:2], x[:, 1:2 * pairs:2]
  assert ((keys >= 1) & (keys < vocab // 2)).all() and (values >= vocab // 2).all()
  assert all(len(set(r)) == pairs for r in keys) and all(len(set(r)) == pairs for r in values)
  assert (mask.sum(1) == queries).all() and (mask[:, :2 * pairs] == 0).all()
  assert (np.flatnonzero(mask.ravel()) % steps % 2 == 0).all()  # queries at even offsets
  for row_x, row_y, row_m, row_k, row_v in zip(x, y, mask, keys, values):
    asked = row_x[row_m == 1]
    assert len(set(asked)) == queries and set(asked) <= set(row_k)
    value_of = dict(zip(row_k, row_v))
    assert [value_of[a] - vocab // 2 for a in asked] == list(row_y[row_m == 1])
  assert (y[mask == 0] == 0).all() and (b['lengths'] == steps).all()


def check_associative_recall(b, p):
  pairs, num_keys, num_values = p['num_pairs'], p['num_keys'], p['num_values']
  x = b['inputs']
  keys, values = x[:, 0:-2:2], x[:, 1:-2:2]
  assert ((keys >= 1) & (keys <= num_keys)).all() and all(len(set(r)) == pairs for r in keys)
  assert ((values > num_keys) & (values <= num_keys + num_values)).all()
  assert (x[:, -2] == num_keys + num_values + 1).all()
  hit = keys == x[:, -1:]
  assert (hit.sum(1) == 1).all()
  np.testing.assert_array_equal(b['targets'], values[hit] - num_keys - 1)
  assert (b['mask'] == 1).all() and (b['lengths'] == 2 * pairs + 2).all()


def check_temporal_order(b, p):
  steps, x = p['seq_len'], b['inputs']
  assert (x[:, 0] == 7).all() and (x[:, -1] == 8).all()
  relevant = (x == 5) | (x == 6)
  assert (relevant.sum(1) == 2).all()
  t = np.argwhere(relevant)[:, 1].reshape(-1, 2)
  assert ((t[:, 0] >= steps // 10) & (t[:, 0] <= steps // 5)).all()
  assert ((t[:, 1] >= steps // 2) & (t[:, 1] <= 3 * steps // 5)).all()
  noise = x[:, 1:-1][~relevant[:, 1:-1]]
  assert ((noise >= 1) & (noise <= 4)).all()
  rows = np.arange(len(x))
  want = 2 * (x[rows, t[:, 0]] == 6) + (x[rows, t[:, 1]] == 6)
  np.testing.assert_array_equal(b['targets'], want)
  assert (b['mask'] == 1).all() and (b['lengths'] == steps).all()


CHECKS = dict(adding=check_adding, copy=check_copy, parity=check_parity,
              flip_flop=check_flip_flop, selective_copy=check_selective_copy, mqar=check_mqar,
              associative_recall=check_associative_recall, temporal_order=check_temporal_order)


def test_every_supported_task_is_covered():
  assert set(CHECKS) == set(on_device.SUPPORTED) == {name for name, _ in CASES.values()}


def test_invariants(case):
  name, params, device, host, _, _ = case
  CHECKS[name](host, params)  # the checks hold on NumPy's examples: they are the definition's
  CHECKS[name](device, params)


# --- distributions: the same statistics of both samples -------------------------------------------

def _marked_positions(b):
  plus = b['inputs'][..., 1] == 1
  return np.sort(np.argwhere(plus)[:, 1].reshape(len(plus), 2), axis=1)


def statistics(name, b, p):
  """{what: ('count', ints) or ('real', floats)} that the task's distribution fixes."""
  x = b['inputs']
  if name == 'adding':
    pos = _marked_positions(b)
    out = dict(lower=('count', pos[:, 0]), upper=('count', pos[:, 1]),
               targets=('real', b['targets']), lengths=('count', b['lengths']),
               values=('real', x[:, :p['seq_len'], 0][:, 1::7].ravel()))
    if p['variant'] == 'hochreiter1997':
      out['step0_marked'] = ('count', (x[:, 0, 1] == 1).astype(int))
    return out
  if name == 'copy':
    return dict(symbols=('count', x[:, :p['num_copy']].ravel()))
  if name == 'parity':
    return dict(lengths=('count', b['lengths']), bits=('count', x[x > 0]),
                targets=('count', b['targets'][b['mask'] > 0]))
  if name == 'flip_flop':
    ops, reads = x[:, 2:-2:2], x[:, 0::2] == 3
    distance = [r - np.flatnonzero(row[:r + 1] == 1).max()
                for row in x[:200, 0::2] for r in np.flatnonzero(row == 3)]
    return dict(ops=('count', ops.ravel()), reads=('count', reads.sum(1)),
                answers=('count', b['targets'][b['mask'] > 0]),
                distance=('count', np.minimum(distance, 8)))
  if name == 'selective_copy':
    region = x[:, :p['seq_len']]
    return dict(positions=('count', np.argwhere(region > 0)[:, 1]),
                first=('count', np.argmax(region > 0, axis=1)),
                symbols=('count', region[region > 0]))
  if name == 'mqar':
    pairs = p['num_pairs']
    query = np.argwhere(b['mask'] > 0)
    first_query = np.argmax(b['mask'] > 0, axis=1)
    filler = x[:, 2 * pairs:][b['mask'][:, 2 * pairs:] == 0]
    return dict(query_steps=('count', query[:, 1]), first_query=('count', first_query),
                which_pair=('count', np.argmax(x[:, :2 * pairs:2] == x[np.arange(len(x)),
                                                                       first_query][:, None], 1)),
                keys=('count', x[:, 0:2 * pairs:2].ravel()), filler=('count', filler),
                targets=('count', b['targets'][b['mask'] > 0]))
  if name == 'associative_recall':
    keys = x[:, 0:-2:2]
    return dict(which_pair=('count', np.argmax(keys == x[:, -1:], 1)),
                keys=('count', keys.ravel()), targets=('count', b['targets']))
  if name == 'temporal_order':
    t = np.argwhere((x == 5) | (x == 6))[:, 1].reshape(-1, 2)
    return dict(t1=('count', t[:, 0]), t2=('count', t[:, 1]), targets=('count', b['targets']),
                noise=('count', x[:, 1:-1][x[:, 1:-1] <= 4]))
  raise AssertionError(name)


def same_distribution(kind, a, b) -> float:
  """p-value of a and b being drawn from one distribution."""
  if kind == 'real':
    return stats.ks_2samp(a, b).pvalue
  categories = np.union1d(a, b)
  if len(categories) == 1:
    return 1.0
  table = np.array([[np.sum(a == c) for c in categories], [np.sum(b == c) for c in categories]])
  return stats.chi2_contingency(table).pvalue


def test_matches_the_numpy_distribution(case):
  name, params, device, host, _, _ = case
  ours, theirs = statistics(name, device, params), statistics(name, host, params)
  p_values = {what: same_distribution(kind, ours[what][1], theirs[what][1])
              for what, (kind, _) in ours.items()}
  assert min(p_values.values()) > P_MIN, p_values


def test_the_comparison_has_power():
  """A device stream with the first adding marker anywhere in [0, T) (not [0, T/2)) is caught."""
  p = dict(seq_len=20)
  host = statistics('adding', tasks.generate('adding', N, seed=1, **p),
                    tasks.spec('adding', **p).params)
  rng = np.random.default_rng(0)
  wrong = rng.integers(0, 20, N)
  assert same_distribution('count', wrong, host['lower'][1]) < 1e-10


# --- the host pipeline's batch --------------------------------------------------------------------

def test_keys_shapes_and_dtypes_equal_the_host_train_batch(case):
  _, _, _, _, stacked, host_batch = case
  assert set(stacked) == set(host_batch)
  for key, value in host_batch.items():
    assert stacked[key].shape[1:] == value.shape, key
    assert stacked[key].dtype == value.dtype, key
    assert value.dtype not in (np.float64, np.int64), key


# --- determinism, resumability, sharding ----------------------------------------------------------

@pytest.fixture(scope='module')
def adding_fns():
  make = lambda **kw: on_device.make_batch_fn('adding', dict(seq_len=16), 8, **kw)
  return dict(one=jax.jit(make(data_seed=3)), again=jax.jit(make(data_seed=3)),
              other_seed=jax.jit(make(data_seed=4)),
              k=jax.jit(on_device.make_k_batches_fn('adding', dict(seq_len=16), 8, 3),
                        static_argnums=1),
              eager=make(data_seed=3))


def _equal(a, b):
  return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_same_seed_and_step_give_the_same_batch(adding_fns):
  f = adding_fns
  assert _equal(f['one'](5), f['again'](5))
  assert _equal(f['one'](jnp.int32(5)), f['one'](5))
  assert not _equal(f['one'](5), f['one'](6))
  assert not _equal(f['one'](5), f['other_seed'](5))


def test_a_batch_is_the_slice_of_a_k_step_call(adding_fns):
  f = adding_fns
  stacked = f['k'](11, 5)
  for t in range(5):
    assert _equal(jax.tree.map(lambda v, t=t: v[t], stacked), f['one'](11 + t))


def test_jit_and_eager_agree(adding_fns):
  np.testing.assert_array_equal(adding_fns['eager'](7)['inputs'], adding_fns['one'](7)['inputs'])
  np.testing.assert_array_equal(adding_fns['eager'](7)['targets'], adding_fns['one'](7)['targets'])


def test_inside_a_scan_each_step_gets_its_batch(adding_fns):
  fn = on_device.make_batch_fn('adding', dict(seq_len=16), 8, 3)

  def body(total, step):
    return total, fn(step)['targets']

  _, targets = jax.jit(lambda s: jax.lax.scan(body, 0.0, s + jnp.arange(3)))(jnp.int32(20))
  for t in range(3):
    np.testing.assert_array_equal(targets[t], adding_fns['one'](20 + t)['targets'])


def test_examples_depend_on_their_stream_position_only():
  """Step s of batch b holds positions (s - 1) b .. s b - 1; host k of n takes k, k + n, ...."""
  p = dict(seq_len=16)
  whole = on_device.make_batch_fn('adding', p, 8, 3)(1)
  halves = on_device.make_batch_fn('adding', p, 4, 3)
  assert _equal(jax.tree.map(lambda v: v[4:], whole), halves(2))
  for k in range(2):
    shard = on_device.make_batch_fn('adding', p, 8, 3, shard_index=k, shard_count=2)(1)
    assert _equal(jax.tree.map(lambda v, k=k: v[k::2], whole), shard)
  np.testing.assert_array_equal(on_device.step_indices(3, 8, 1, 2), [17, 19, 21, 23])


def test_the_stream_is_not_keyed_like_a_model_init():
  """data_seed 0 and a model's key(0) share no key: the stream folds in a tag first."""
  plain = jax.random.fold_in(jax.random.key(0, impl='threefry2x32'), 0)
  assert not np.array_equal(jax.random.key_data(plain),
                            jax.random.key_data(on_device.example_key(0, 0)))


@pytest.mark.parametrize('call, match', [
    (lambda: on_device.make_batch_fn('listops', {}, 8, 0), 'supported tasks: adding'),
    (lambda: on_device.make_batch_fn('adding', dict(variant='x'), 8, 0), "variant='x'"),
    (lambda: on_device.make_batch_fn('adding', {}, 6, 0, shard_count=4), 'shard_count=4'),
    (lambda: on_device.make_batch_fn('adding', {}, 8, -1), 'data_seed=-1'),
    (lambda: on_device.supported('nope'), "unknown task 'nope'"),
])
def test_bad_arguments_name_themselves(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_supported():
  assert on_device.supported('adding', dict(variant='hochreiter1997'))
  assert not on_device.supported('listops') and not on_device.supported('reverse')


# --- config.data.on_device ------------------------------------------------------------------------

def _config(task='adding', **overrides):
  config = base_config('lstm', task)
  cfg_lib.apply_overrides(config, overrides)
  return config


def test_config_default_is_auto_and_resolves_per_task():
  assert _config().data.on_device == 'auto'
  assert cfg_lib.data_on_device(_config())
  assert not cfg_lib.data_on_device(_config('listops'))
  assert not cfg_lib.data_on_device(_config(**{'task.num_train': 1000}))
  assert not cfg_lib.data_on_device(_config(**{'data.on_device': False}))
  assert cfg_lib.data_on_device(_config(**{'data.on_device': True}))


def test_old_configs_keep_the_host_pipeline():
  old = _config()
  del old['data']
  assert cfg_lib.ADDED_FIELDS['data.on_device'] is False
  assert not cfg_lib.data_on_device(old)
  assert 'data.on_device' not in cfg_lib.RESUMABLE_FIELDS


@pytest.mark.parametrize('overrides, match', [
    ({'data.on_device': 'yes'}, r"config.data.on_device='yes'; valid choices: \['auto', True"),
    ({'data.on_device': 1}, r'config.data.on_device=1; valid choices'),
    ({'data.on_device': True, 'task.source': 'prepared'}, "source='prepared'"),
    ({'data.on_device': True, 'task.num_train': 100}, 'num_train=100'),
    ({'num_train_steps': 2**27, 'batch_size': 64}, 'exceeds the 4294967296 examples'),
])
def test_bad_on_device_values_are_refused(overrides, match):
  with pytest.raises(ValueError, match=match):
    validate(_config(**overrides), 1)


def test_on_device_true_on_an_unsupported_task_names_the_supported_ones():
  with pytest.raises(ValueError, match=r"task 'listops' has no on-device generator; supported "
                                        r'tasks: adding, copy, parity'):
    validate(_config('listops', **{'data.on_device': True}), 1)
  validate(_config('listops'), 1)  # 'auto': the host pipeline, no error
  validate(_config(**{'data.on_device': True}), 1)


def test_a_workdir_from_before_the_field_resumes_on_the_host_pipeline(tmp_path):
  """Old runs read the host stream: 'auto' continues them on it (config.json then says so), an
  explicit True is refused, naming the field; a new run with 'auto' keeps the stream it started
  with too."""
  import json
  from attnlab.train import run_dir
  config = _config()
  old = run_dir.config_to_json(config)
  del old['data']
  (tmp_path / 'checkpoints' / '3').mkdir(parents=True)  # the workdir claims its config
  (tmp_path / 'config.json').write_text(json.dumps(old))
  run_dir.check_resumable_config(str(tmp_path), config)
  assert config.data.on_device is False and not cfg_lib.data_on_device(config)
  assert run_dir.read_config(str(tmp_path)).data.on_device is False
  explicit = _config(**{'data.on_device': True})
  with pytest.raises(ValueError, match=r"data.on_device: False -> True"):
    run_dir.check_resumable_config(str(tmp_path), explicit)
  fresh = tmp_path / 'fresh'
  run_dir.check_resumable_config(str(fresh), _config())  # a new run: 'auto' saved as it is
  (fresh / 'checkpoints' / '3').mkdir(parents=True)
  again = _config()
  run_dir.check_resumable_config(str(fresh), again)
  assert again.data.on_device == 'auto' and cfg_lib.data_on_device(again)
  config.data.on_device = False
  run_dir.check_resumable_config(str(tmp_path), config)
