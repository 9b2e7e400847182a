"""S6, minGRU, minLSTM and sLSTM against float64 NumPy equations: values, gradients, lengths, reverse.

Gradients of the NumPy references come from the complex step (exact to rounding), so ops and
references agree to 1e-10 in values and gradients. Each case compiles one value-and-gradient.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import ops
from tests import reference as ref

B, T, D, E, N, H, HEADS = 2, 5, 3, 3, 4, 4, 2
LENGTHS = np.array([T, 3])
TOL64 = dict(rtol=1e-10, atol=1e-12)
# (method, reverse, lengths, initial state given)
CASES = [("parallel", False, None, False), ("sequential", False, None, False),
         ("parallel", False, LENGTHS, True), ("sequential", False, LENGTHS, True),
         ("parallel", True, LENGTHS, True), ("sequential", True, LENGTHS, False)]
MIN_RNN_CASES = CASES + [("blocked", False, None, False)]  # several blocks: the test below


def check_against_reference(jax_fn, ref_fn, args, seed=0):
  """jax_fn and ref_fn map the same flat float64 arrays to a tuple of arrays; compare values and the
  gradients of a random weighting of every output (outputs and final states)."""
  want = ref_fn(*args)
  rng = np.random.default_rng(seed)
  weights = [rng.standard_normal(np.shape(w)) for w in want]
  ref_loss = lambda *a: sum(np.sum(w * o) for w, o in zip(weights, ref_fn(*a)))

  def loss(*a):
    out = jax_fn(*a)
    return sum(jnp.sum(w * o) for w, o in zip(weights, out)), out

  with jax.enable_x64(True):
    step = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args))), has_aux=True))
    (_, got), grads = step(*(jnp.asarray(a) for a in args))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, **TOL64)
  for k, arg in enumerate(args):
    np.testing.assert_allclose(grads[k], ref.complex_step_grad(ref_loss, args, k), **TOL64,
                               err_msg=f"gradient of argument {k}")


def test_causal_conv1d_matches_reference():
  rng = np.random.default_rng(0)
  args = (rng.standard_normal((B, T, E)), rng.standard_normal((4, E)), rng.standard_normal(E))
  check_against_reference(lambda *a: (ops.causal_conv1d(*a),), lambda *a: (ref.causal_conv1d(*a),),
                          args)


def s6_args(rng, with_h0):
  args = [rng.standard_normal((B, T, E)), np.exp(rng.uniform(-3, 0, (B, T, E))),
          -np.exp(rng.uniform(-1, 1, (E, N))), rng.standard_normal((B, T, N)),
          rng.standard_normal((B, T, N)), rng.standard_normal(E)]
  return args + ([rng.standard_normal((B, E, N))] if with_h0 else [])


@pytest.mark.parametrize("method,reverse,lengths,with_h0", CASES + [("blocked", True, LENGTHS, True)])
def test_selective_scan_matches_reference(method, reverse, lengths, with_h0):
  args = s6_args(np.random.default_rng(1), with_h0)
  kw = dict(lengths=lengths, reverse=reverse)
  jax_fn = lambda u, dt, a, b, c, d, *h0: ops.selective_scan(
      u, dt, a, b, c, d, *h0, method=method, lengths=None if lengths is None else jnp.asarray(lengths),
      reverse=reverse)
  ref_fn = lambda u, dt, a, b, c, d, *h0: ref.selective_scan(u, dt, a, b, c, d, *h0, **kw)
  check_against_reference(jax_fn, ref_fn, args)


@pytest.mark.parametrize("reverse,lengths", [(False, None), (True, LENGTHS)])
def test_selective_scan_blocked_over_several_blocks_matches_reference(reverse, lengths):
  """3 blocks of 2 steps (the last padded) joined through the carried state, with h0."""
  args = s6_args(np.random.default_rng(10), True)
  jax_fn = lambda *a: ops.selective_scan(*a[:6], a[6], method="blocked", block=2,
                                         reverse=reverse, lengths=None if lengths is None else jnp.asarray(lengths))
  ref_fn = lambda *a: ref.selective_scan(*a, lengths=lengths, reverse=reverse)
  check_against_reference(jax_fn, ref_fn, args)


def min_rnn_args(rng, cell, with_h0):
  k = 2 if cell == "min_gru" else 3
  args = [rng.standard_normal((D, k * H)), rng.standard_normal(k * H), rng.standard_normal((B, T, D))]
  return args + ([rng.standard_normal((B, H))] if with_h0 else [])


@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
@pytest.mark.parametrize("method,reverse,lengths,with_h0", MIN_RNN_CASES)
def test_min_rnn_matches_reference(cell, method, reverse, lengths, with_h0):
  args = min_rnn_args(np.random.default_rng(2), cell, with_h0)
  op = getattr(ops, cell)
  jax_fn = lambda w, b, x, *h0: op({"W_x": w, "b": b}, x, *h0, method=method, reverse=reverse,
                                   lengths=None if lengths is None else jnp.asarray(lengths))
  ref_fn = lambda w, b, x, *h0: ref.min_rnn(cell, {"W_x": w, "b": b}, x, *(h0 or (None,)), lengths,
                                            reverse)
  check_against_reference(jax_fn, ref_fn, args)


@pytest.mark.parametrize("cell,length,block,reverse", [  # 2 blocks, the last padded / 2 of 3
    ("min_gru", 7, 4, False), ("min_lstm", 7, 4, True), ("min_gru", 6, 4, True)])
def test_min_rnn_blocked_over_several_blocks_matches_reference(cell, length, block, reverse,
                                                               monkeypatch):
  """Blocks joined through the carried state, a padded last block, lengths and reverse, h0."""
  monkeypatch.setattr(ops.min_rnn, "BLOCK", block)
  rng = np.random.default_rng(9)
  w, b, _, h0 = min_rnn_args(rng, cell, True)
  x, lengths = rng.standard_normal((B, length, D)), np.array([length, 3])
  jax_fn = lambda w, b, x, h0: getattr(ops, cell)({"W_x": w, "b": b}, x, h0, method="blocked",
                                                  lengths=jnp.asarray(lengths), reverse=reverse)
  ref_fn = lambda w, b, x, h0: ref.min_rnn(cell, {"W_x": w, "b": b}, x, h0, lengths, reverse)
  check_against_reference(jax_fn, ref_fn, [w, b, x, h0])


def slstm_args(rng, with_state):
  d = H // HEADS
  args = [rng.standard_normal((D, 4 * H)), 0.5 * rng.standard_normal((4, HEADS, d, d)),
          rng.standard_normal(4 * H), rng.standard_normal((B, T, D))]
  if with_state:  # (h, c, n, m) with n > 0
    args += [rng.standard_normal((B, H)), rng.standard_normal((B, H)),
             rng.uniform(0.5, 2.0, (B, H)), rng.standard_normal((B, H))]
  return args


@pytest.mark.parametrize("forget,reverse,lengths,with_state", [
    ("sigmoid", False, None, False), ("exp", False, None, False), ("sigmoid", False, LENGTHS, True),
    ("exp", True, LENGTHS, True), ("sigmoid", True, LENGTHS, False)])
def test_slstm_matches_reference(forget, reverse, lengths, with_state):
  args = slstm_args(np.random.default_rng(3), with_state)

  def jax_fn(w, r, b, x, *state):
    hs, final = ops.slstm({"W_x": w, "R": r, "b": b}, x, state or None, forget=forget, reverse=reverse,
                          lengths=None if lengths is None else jnp.asarray(lengths))
    return (hs,) + final

  def ref_fn(w, r, b, x, *state):
    hs, final = ref.slstm({"W_x": w, "R": r, "b": b}, x, state or None, lengths, reverse, forget)
    return (hs,) + final

  check_against_reference(jax_fn, ref_fn, args)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_slstm_stabiliser_leaves_h_unchanged(forget):
  """h from the stabilised cell equals h of the raw equations (no m), where those do not overflow."""
  rng = np.random.default_rng(4)
  w, r, b, x = slstm_args(rng, False)
  p = {"W_x": w, "R": r, "b": b}
  raw = (np.zeros((B, H)),) * 3
  with jax.enable_x64(True):
    state = (jnp.zeros((B, H)),) * 4
    for t in range(T):
      raw = ref.slstm_raw_cell(p, raw, x[:, t], forget)
      state = ops.slstm_cell(jax.tree.map(jnp.asarray, p), state, jnp.asarray(x[:, t]), forget)
      np.testing.assert_allclose(state[0], raw[0], **TOL64)
      np.testing.assert_allclose(state[1] / state[2], raw[1] / raw[2], **TOL64)  # c / n


def test_slstm_exponential_gates_do_not_overflow_in_float32():
  rng = np.random.default_rng(5)
  w, r, b, x = (jnp.asarray(a, jnp.float32) for a in slstm_args(rng, False))
  hs, (h, c, n, m) = ops.slstm({"W_x": w, "R": r, "b": b + 200.0}, 50 * x, forget="exp")
  assert np.isfinite(hs).all() and np.isfinite(c).all() and np.isfinite(n).all()
  assert float(jnp.max(m)) > 100  # exp(m) would overflow float32


def parallel_and_sequential(fn, args):
  """Loss values and gradients through fn(method, *args) -> (outputs, final state), both methods."""
  out = {}
  for method in ("parallel", "sequential"):

    def loss(*a):
      ys, final = fn(method, *a)
      return jnp.sum(jnp.sin(ys)) + jnp.sum(final**2)

    out[method] = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(args)))))(*args)
  return out["parallel"], out["sequential"]


def test_parallel_selective_scan_is_the_associative_scan_on_every_backend():
  """method='parallel' runs `jax.lax.associative_scan` (no sequential `scan` in its program) on CPU
  too, and at T=19 (several levels of the scan, some odd) with lengths, reverse and h0 it matches
  the float64 NumPy equations in values and gradients."""
  rng = np.random.default_rng(9)
  length = 19
  u, delta, b, c = (rng.standard_normal((B, length, k)) for k in (E, E, N, N))
  args = [u, np.exp(-2 + np.abs(delta)), -np.exp(rng.uniform(-1, 1, (E, N))), b, c,
          rng.standard_normal(E), rng.standard_normal((B, E, N))]
  lengths = np.array([length, 13])
  program = str(jax.make_jaxpr(lambda *a: ops.selective_scan(*a, method="parallel"))(*args))
  assert "scan[" not in program, "method='parallel' ran a sequential lax.scan"
  kw = dict(lengths=lengths, reverse=True)
  check_against_reference(lambda *a: ops.selective_scan(*a[:6], a[6], method="parallel", **kw),
                          lambda *a: ref.selective_scan(*a, **kw), args)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["min_gru", "min_lstm"])
def test_parallel_min_rnn_keeps_float32_precision_over_long_sequences(cell):
  """The log-space form at T=1,999 in float32 against the float64 NumPy equations: relative error
  below 1e-5 (a log-space sum over the whole sequence gave ~2e-4 at T=1,000; the sequential
  form ~3e-7)."""
  rng = np.random.default_rng(11)
  length, hidden = 1999, 4  # not a multiple of LOG_BLOCK: a padded last block
  w = 0.5 * rng.standard_normal((D, (2 if cell == "min_gru" else 3) * hidden))
  b = 0.5 * rng.standard_normal(w.shape[1])
  x = rng.standard_normal((B, length, D))
  want, want_final = ref.min_rnn(cell, {"W_x": w, "b": b}, x)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  hs, final = getattr(ops, cell)({"W_x": f32(w), "b": f32(b)}, f32(x), method="parallel")
  err = np.abs(np.asarray(hs, np.float64) - want) / np.abs(want)  # h > 0 from h0 = 0: g > 0
  worst = np.argmax(err.max(axis=(0, 2)))
  assert err.max() < 1e-5, f"max relative error {err.max():.1e} at step {worst}"
  np.testing.assert_allclose(final, want_final, rtol=1e-5)
  # the blocks' joins with an initial state, lengths and reverse, in float64 to rounding
  h0, lengths = rng.standard_normal((B, hidden)), np.array([length, 1234])
  want, want_final = ref.min_rnn(cell, {"W_x": w, "b": b}, x, h0, lengths, reverse=True)
  with jax.enable_x64(True):
    hs, final = getattr(ops, cell)({"W_x": jnp.asarray(w), "b": jnp.asarray(b)}, jnp.asarray(x),
                                   jnp.asarray(h0), lengths=lengths, reverse=True,
                                   method="parallel")
  np.testing.assert_allclose(hs, want, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(final, want_final, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("op", ["selective_scan", "min_gru", "min_lstm"])
def test_parallel_form_equals_sequential_form_in_float32(op):
  rng = np.random.default_rng(6)
  length, lengths = 16, jnp.array([16, 7])
  if op == "selective_scan":
    u, _, a, _, _, d, h0 = s6_args(rng, True)
    u, dt, b, c = (rng.standard_normal((B, length, k)) for k in (E, E, N, N))
    args = [np.asarray(v, np.float32) for v in (u, 0.1 * np.abs(dt), a, b, c, d, h0)]
    fn = lambda method, *a: ops.selective_scan(*a, method=method, lengths=lengths, reverse=True)
  else:
    args = [np.asarray(a, np.float32) for a in min_rnn_args(rng, op, True)]
    args[2] = rng.standard_normal((B, length, D)).astype(np.float32)
    fn = lambda method, w, b, x, h0: getattr(ops, op)({"W_x": w, "b": b}, x, h0, method=method,
                                                      lengths=lengths)
  (v_par, g_par), (v_seq, g_seq) = parallel_and_sequential(fn, args)
  np.testing.assert_allclose(v_par, v_seq, rtol=1e-4)
  for a, b in zip(g_par, g_seq):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_padding_never_reaches_valid_steps():
  """Changing inputs beyond each length changes no valid output and no final state (parallel forms)."""
  rng = np.random.default_rng(7)
  lengths = jnp.asarray(LENGTHS)
  w, b, x, h0 = (jnp.asarray(a, jnp.float32) for a in min_rnn_args(rng, "min_gru", True))
  noisy = x.at[1, 3:].set(100.0)
  for op in (ops.min_gru, ops.min_lstm):
    p = {"W_x": jnp.concatenate([w, w[:, :H]], 1), "b": jnp.concatenate([b, b[:H]])} \
        if op is ops.min_lstm else {"W_x": w, "b": b}
    for reverse in (False, True):
      got, want = (op(p, xx, h0, lengths=lengths, reverse=reverse) for xx in (noisy, x))
      jax.tree.map(lambda a, c: np.testing.assert_array_equal(a, c), got, want)
      np.testing.assert_array_equal(got[0][1, 3:], 0.0)
  args = [jnp.asarray(a, jnp.float32) for a in s6_args(rng, False)]
  base = ops.selective_scan(*args, lengths=lengths)
  args[0], args[3] = args[0].at[1, 3:].set(1e3), args[3].at[1, 3:].set(-7.0)
  jax.tree.map(lambda a, c: np.testing.assert_array_equal(a, c),
               ops.selective_scan(*args, lengths=lengths), base)


def test_bad_arguments_are_clear_errors():
  rng = np.random.default_rng(8)
  args = [jnp.asarray(a, jnp.float32) for a in s6_args(rng, False)]
  with pytest.raises(ValueError, match=r"method='scan'; valid choices: \['parallel', 'sequential', 'blocked', 'auto'\]"):
    ops.selective_scan(*args, method="scan")
  with pytest.raises(ValueError, match=r"A must be \(E,N\)"):
    ops.selective_scan(args[0], args[1], args[2][:, :2], *args[3:])
  w, b, x = (jnp.asarray(a, jnp.float32) for a in min_rnn_args(rng, "min_gru", False))
  with pytest.raises(ValueError, match="min_gru: method='log'"):
    ops.min_gru({"W_x": w, "b": b}, x, method="log")
  p = dict(zip(("W_x", "R", "b"), (jnp.asarray(a) for a in slstm_args(rng, False)[:3])))
  with pytest.raises(ValueError, match=r"forget='relu'; valid choices: \['sigmoid', 'exp'\]"):
    ops.slstm(p, jnp.zeros((B, T, D)), forget="relu")
