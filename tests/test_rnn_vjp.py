"""The tanh RNN's and the GRU's hand-written backward passes (`ops/rnn_vjp.py`) against JAX's
gradient of the plain `lax.scan` (`rnn_scan`, `gru_scan`), in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import ops
from tests import reference as ref

B, T, D, H = 3, 7, 4, 5
CELLS = {  # name: (custom, plain scan, parameter shapes, keyword arguments)
    "rnn": (ops.rnn, ops.rnn_scan, {"W_xh": (D, H), "W_hh": (H, H), "b_h": (H,)}, {}),
    "gru": (ops.gru, ops.gru_scan,
            {"W_x": (D, 3 * H), "W_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)}, {}),
    "gru_reset_after": (ops.gru, ops.gru_scan,
                        {"W_x": (D, 3 * H), "W_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)},
                        {"reset_after": True}),
}


def inputs(cell, seed=0):
  rng = np.random.default_rng(seed)
  p = jax.tree.map(jnp.asarray, ref.random_params(rng, CELLS[cell][2], scale=0.5))
  return p, jnp.asarray(rng.standard_normal((B, T, D))), jnp.asarray(rng.standard_normal((B, H)))


def loss_of(seq, lengths, reverse, kw):
  """A loss that reaches every output and the final state, with uneven weights."""
  def loss(p, x, h0):
    hs, h = seq(p, x, h0, lengths=lengths, reverse=reverse, **kw)
    weights = jnp.linspace(0.5, 1.5, hs.size).reshape(hs.shape)
    return jnp.sum(jnp.sin(hs) * weights) + jnp.sum(h**2)
  return loss


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("lengths,reverse", [(None, False), ([T, 0, T + 3], True)])
def test_values_and_gradients_equal_the_plain_scan(cell, lengths, reverse):
  """Lengths of 0 (the initial state passes through) and beyond T, an initial state, reverse."""
  custom, scan, _, kw = CELLS[cell]
  with jax.enable_x64(True):
    p, x, h0 = inputs(cell)
    lengths = None if lengths is None else jnp.asarray(lengths)
    run = lambda seq: jax.jit(lambda p, x, h0: seq(p, x, h0, lengths=lengths, reverse=reverse, **kw))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12),
                 run(custom)(p, x, h0), run(scan)(p, x, h0))
    grad = lambda seq: jax.jit(jax.grad(loss_of(seq, lengths, reverse, kw), argnums=(0, 1, 2)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
                 grad(custom)(p, x, h0), grad(scan)(p, x, h0))


def test_bfloat16_gru_runs_close_to_float32_with_weight_gradients_summed_in_float32():
  p, x, _ = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), inputs("gru", 2))
  bf16 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.bfloat16), tree)
  got = ops.gru(bf16(p), bf16(x))[0]
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), ops.gru_scan(p, x)[0], atol=5e-2)
  grad = jax.jit(jax.grad(lambda p, x: jnp.sum(ops.gru(p, x)[0].astype(jnp.float32))))
  want, got = grad(p, x), grad(bf16(p), bf16(x))
  for name in ("W_h", "b_h"):
    assert got[name].dtype == jnp.bfloat16
    error = jnp.linalg.norm(got[name].astype(jnp.float32) - want[name]) / jnp.linalg.norm(want[name])
    assert error < 2e-2, (name, float(error))
