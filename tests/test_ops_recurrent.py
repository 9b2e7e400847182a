"""Cells and sequence recurrences of `attnlab.ops` against float64 NumPy equations and Flax's cells."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from attnlab import ops
from tests import reference as ref
from tests.marks import fast_only

B, T, D, H = 3, 6, 4, 5
TOL = dict(rtol=2e-5, atol=2e-5)


def shapes(cell):
  if cell == "rnn":
    return {"W_xh": (D, H), "W_hh": (H, H), "b_h": (H,)}
  if cell == "lstm":
    return {"W_x": (D, 4 * H), "W_h": (H, 4 * H), "b": (4 * H,)}
  return {"W_x": (D, 3 * H), "W_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)}


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def f32(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


@pytest.mark.parametrize("activation,np_f", [("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0))])
def test_rnn_cell_matches_equation(rng, activation, np_f):
  p = ref.random_params(rng, shapes("rnn"))
  h, x = rng.standard_normal((B, H)), rng.standard_normal((B, D))
  got = ops.rnn_cell(f32(p), f32(h), f32(x), activation=activation)
  np.testing.assert_allclose(got, ref.rnn_cell(p, h, x, np_f), **TOL)


def test_lstm_cell_matches_equation(rng):
  p = ref.random_params(rng, shapes("lstm"))
  carry = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
  x = rng.standard_normal((B, D))
  h, c = ops.lstm_cell(f32(p), f32(carry), f32(x))
  want_h, want_c = ref.lstm_cell(p, carry, x)
  np.testing.assert_allclose(h, want_h, **TOL)
  np.testing.assert_allclose(c, want_c, **TOL)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_cell_matches_equation(rng, reset_after):
  p = ref.random_params(rng, shapes("gru"))
  h, x = rng.standard_normal((B, H)), rng.standard_normal((B, D))
  got = ops.gru_cell(f32(p), f32(h), f32(x), reset_after=reset_after)
  np.testing.assert_allclose(got, ref.gru_cell(p, h, x, reset_after), **TOL)


def test_gru_variants_differ(rng):
  """The two reset conventions are different functions (so the tests above test something)."""
  p = f32(ref.random_params(rng, shapes("gru")))
  h, x = f32(rng.standard_normal((B, H))), f32(rng.standard_normal((B, D)))
  assert not np.allclose(ops.gru_cell(p, h, x), ops.gru_cell(p, h, x, reset_after=True), atol=1e-3)


SEQUENCES = {
    "rnn": (ops.rnn, ref.rnn_cell),
    "lstm": (ops.lstm, ref.lstm_cell),
    "gru": (ops.gru, ref.gru_cell),
}


def initial_state(cell, rng):
  if cell == "lstm":
    return (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
  return rng.standard_normal((B, H))


@pytest.mark.parametrize("cell", list(SEQUENCES))
def test_sequence_equals_cell_loop(rng, cell):
  seq, ref_cell = SEQUENCES[cell]
  p = ref.random_params(rng, shapes(cell))
  x = rng.standard_normal((B, T, D))
  s0 = initial_state(cell, rng)
  hs, final = jax.jit(seq)(f32(p), f32(x), f32(s0))
  want_hs, want_final = ref.run_cell(ref_cell, p, x, s0)
  np.testing.assert_allclose(hs, want_hs, **TOL)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), final, want_final)


@pytest.mark.parametrize("cell", list(SEQUENCES))
def test_zero_initial_state_by_default(rng, cell):
  seq, ref_cell = SEQUENCES[cell]
  p = ref.random_params(rng, shapes(cell))
  x = rng.standard_normal((B, T, D))
  zero = (np.zeros((B, H)),) * 2 if cell == "lstm" else np.zeros((B, H))
  hs, _ = seq(f32(p), f32(x))
  np.testing.assert_allclose(hs, ref.run_cell(ref_cell, p, x, zero)[0], **TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lengths_freeze_state_and_zero_outputs(rng, cell):
  """With lengths, each sequence equals the unpadded run of its valid prefix."""
  seq, ref_cell = SEQUENCES[cell]
  p = ref.random_params(rng, shapes(cell))
  x = rng.standard_normal((B, T, D))
  lengths = np.array([T, 3, 1])
  hs, final = seq(f32(p), f32(x), lengths=jnp.asarray(lengths))
  for b, n in enumerate(lengths):
    zero = (np.zeros((1, H)),) * 2 if cell == "lstm" else np.zeros((1, H))
    want_hs, want_final = ref.run_cell(ref_cell, p, x[b:b + 1, :n], zero)
    np.testing.assert_allclose(hs[b, :n], want_hs[0], **TOL)
    np.testing.assert_array_equal(hs[b, n:], 0.0)
    got_h = final[0] if cell == "lstm" else final
    want_h = want_final[0] if cell == "lstm" else want_final
    np.testing.assert_allclose(got_h[b], want_h[0], **TOL)


def test_reverse_runs_each_sequence_backwards_within_its_length(rng):
  p = ref.random_params(rng, shapes("rnn"))
  x = rng.standard_normal((B, T, D))
  lengths = np.array([T, 4, 2])
  hs, final = ops.rnn(f32(p), f32(x), lengths=jnp.asarray(lengths), reverse=True)
  for b, n in enumerate(lengths):
    want_hs, want_h = ref.run_cell(ref.rnn_cell, p, x[b:b + 1, :n][:, ::-1], np.zeros((1, H)))
    np.testing.assert_allclose(hs[b, :n], want_hs[0, ::-1], **TOL)  # output aligned with input step
    np.testing.assert_allclose(final[b], want_h[0], **TOL)
    np.testing.assert_array_equal(hs[b, n:], 0.0)


def test_reverse_padded():
  x = jnp.arange(2 * 5).reshape(2, 5)[..., None]
  out = ops.reverse_padded(x, jnp.array([5, 3]))[..., 0]
  np.testing.assert_array_equal(out, [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_beyond_t_are_clipped_to_t_in_both_directions(rng, cell, reverse):
  """A length > T (or < 0) runs like T (or 0): no NaN from the reversal's gather."""
  seq = SEQUENCES[cell][0]
  p, x = f32(ref.random_params(rng, shapes(cell))), f32(rng.standard_normal((B, T, D)))
  got = seq(p, x, lengths=jnp.array([T + 3, 2 * T, -1]), reverse=reverse)
  want = seq(p, x, lengths=jnp.array([T, T, 0]), reverse=reverse)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), got, want)
  assert all(bool(jnp.isfinite(a).all()) for a in jax.tree.leaves(got))
  np.testing.assert_array_equal(ops.reverse_padded(x, jnp.array([T + 1, T, 9 * T])),
                                jnp.flip(x, axis=1))


@pytest.mark.parametrize("cell", fast_only(list(SEQUENCES), keep=("lstm",)))
def test_unroll_does_not_change_results(rng, cell):
  """Unroll factors that divide T, do not, equal it and exceed it, with lengths, an initial state
  and reverse: each equals the float64 loop of the cell over each sequence's valid steps."""
  seq, ref_cell = SEQUENCES[cell]
  p, x, s0 = ref.random_params(rng, shapes(cell)), rng.standard_normal((B, T, D)), initial_state(cell, rng)
  lengths = np.array([T, 4, 1])
  for reverse in (False, True):
    want = []
    for b, n in enumerate(lengths):
      xb = x[b:b + 1, :n][:, ::-1] if reverse else x[b:b + 1, :n]
      hs, final = ref.run_cell(ref_cell, p, xb, jax.tree.map(lambda s: s[b:b + 1], s0))
      want.append((hs[0, ::-1] if reverse else hs[0], final))
    for unroll in (1, 2, 4, T, T + 3):
      hs, final = jax.jit(lambda p, x, s0: seq(p, x, s0, lengths=jnp.asarray(lengths), reverse=reverse,
                                               unroll=unroll))(f32(p), f32(x), f32(s0))
      for b, n in enumerate(lengths):
        np.testing.assert_allclose(hs[b, :n], want[b][0], **TOL, err_msg=f"unroll={unroll}")
        jax.tree.map(lambda got, w: np.testing.assert_allclose(got[b], w[0], **TOL), final, want[b][1])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cell_gradients(rng, cell):
  p = ref.random_params(rng, shapes(cell), scale=0.3)
  x = rng.standard_normal((2, D))
  with jax.enable_x64(True):
    p64 = jax.tree.map(jnp.asarray, p)
    if cell == "lstm":
      f = lambda p, h, c, x: ops.lstm_cell(p, (h, c), x)
      args = (p64, jnp.asarray(rng.standard_normal((2, H))), jnp.asarray(rng.standard_normal((2, H))))
    else:
      f = ops.rnn_cell if cell == "rnn" else ops.gru_cell
      args = (p64, jnp.asarray(rng.standard_normal((2, H))))
    check_grads(f, args + (jnp.asarray(x),), order=2, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_sequence_gradients(rng):
  p = ref.random_params(rng, shapes("lstm"), scale=0.3)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal((2, 4, D)))
    loss = lambda p, x: jnp.sum(ops.lstm(p, x)[0] ** 2)
    check_grads(loss, (jax.tree.map(jnp.asarray, p), x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_lstm_matches_flax_optimized_lstm_cell(rng):
  """Same weights mapped across: Flax keeps one kernel per gate, ops one fused block per gate order."""
  cell = nn.OptimizedLSTMCell(H)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  variables = nn.RNN(cell).init(jax.random.PRNGKey(1), x)
  fp = variables["params"]["cell"]
  fp = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(2), a.shape), fp)
  gates = ["i", "f", "g", "o"]
  params = {
      "W_x": jnp.concatenate([fp["i" + g]["kernel"] for g in gates], axis=1),
      "W_h": jnp.concatenate([fp["h" + g]["kernel"] for g in gates], axis=1),
      "b": jnp.concatenate([fp["h" + g]["bias"] for g in gates]),
  }
  want = nn.RNN(cell).apply({"params": {"cell": fp}}, x)
  got, _ = ops.lstm(params, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gru_reset_after_matches_flax_gru_cell(rng):
  cell = nn.GRUCell(H)
  x = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
  fp = nn.RNN(cell).init(jax.random.PRNGKey(1), x)["params"]["cell"]
  fp = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(2), a.shape), fp)
  zeros = jnp.zeros((H,))
  params = {
      "W_x": jnp.concatenate([fp["ir"]["kernel"], fp["iz"]["kernel"], fp["in"]["kernel"]], axis=1),
      "W_h": jnp.concatenate([fp["hr"]["kernel"], fp["hz"]["kernel"], fp["hn"]["kernel"]], axis=1),
      "b_x": jnp.concatenate([fp["ir"]["bias"], fp["iz"]["bias"], fp["in"]["bias"]]),
      "b_h": jnp.concatenate([zeros, zeros, fp["hn"]["bias"]]),
  }
  want = nn.RNN(cell).apply({"params": {"cell": fp}}, x)
  got, _ = ops.gru(params, x, reset_after=True)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bad_shapes_and_activation_raise(rng):
  p = f32(ref.random_params(rng, shapes("rnn")))
  with pytest.raises(ValueError, match=r"x must be \(B,T,D\)"):
    ops.rnn(p, jnp.zeros((T, D)))
  with pytest.raises(ValueError, match="features but the input weights expect 4"):
    ops.rnn(p, jnp.zeros((B, T, D + 1)))
  with pytest.raises(ValueError, match="unknown activation 'swishy'.*valid choices"):
    ops.rnn_cell(p, jnp.zeros((B, H)), jnp.zeros((B, D)), activation="swishy")
