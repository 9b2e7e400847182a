"""Attention, masks, positions and the linear recurrence of `attnlab.ops` against the equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from attnlab import ops
from tests import reference as ref

B, TQ, TK, N, DH = 2, 5, 7, 3, 4
TOL = dict(rtol=2e-5, atol=2e-5)


@pytest.fixture
def qkv():
  rng = np.random.default_rng(0)
  return (rng.standard_normal((B, TQ, N, DH)), rng.standard_normal((B, TK, N, DH)),
          rng.standard_normal((B, TK, N, DH)))


def test_attention_matches_formula(qkv):
  q, k, v = qkv
  out, w = ops.scaled_dot_product_attention(*map(jnp.float32, (q, k, v)))
  want_out, want_w = ref.attention(q, k, v)
  np.testing.assert_allclose(out, want_out, **TOL)
  np.testing.assert_allclose(w, want_w, **TOL)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)


def test_attention_with_mask_and_bias_matches_formula(qkv):
  q, k, v = qkv
  rng = np.random.default_rng(1)
  mask = rng.random((B, 1, TQ, TK)) < 0.6
  mask[0, 0, 2] = False  # one fully masked query row
  bias = rng.standard_normal((1, N, TQ, TK))
  out, w = ops.scaled_dot_product_attention(*map(jnp.float32, (q, k, v)), mask=jnp.asarray(mask),
                                            bias=jnp.float32(bias))
  want_out, want_w = ref.attention(q, k, v, mask, bias)
  np.testing.assert_allclose(w, want_w, **TOL)
  np.testing.assert_allclose(out, want_out, **TOL)
  np.testing.assert_array_equal(out[0, 2], 0.0)


def test_fully_masked_rows_are_zero_with_finite_gradients(qkv):
  q, k, v = map(jnp.float32, qkv)
  mask = jnp.zeros((B, 1, TQ, TK), bool).at[1].set(True)

  def loss(q, k, v):
    out, _ = ops.scaled_dot_product_attention(q, k, v, mask=mask)
    return jnp.sum(out**2)

  out, w = ops.scaled_dot_product_attention(q, k, v, mask=mask)
  np.testing.assert_array_equal(out[0], 0.0)
  np.testing.assert_array_equal(w[0], 0.0)
  grads = jax.grad(loss, argnums=(0, 1, 2))(q, k, v)
  assert all(bool(jnp.isfinite(g).all()) for g in grads)
  np.testing.assert_array_equal(grads[0][0], 0.0)


def test_causal_output_ignores_future_tokens():
  rng = np.random.default_rng(2)
  x = jnp.float32(rng.standard_normal((1, 8, N, DH)))
  mask = ops.causal_mask(8)
  out, _ = ops.scaled_dot_product_attention(x, x, x, mask=mask)
  changed = x.at[:, 5:].set(jnp.float32(rng.standard_normal((1, 3, N, DH))))
  out2, _ = ops.scaled_dot_product_attention(changed, changed, changed, mask=mask)
  np.testing.assert_allclose(out[:, :5], out2[:, :5], rtol=1e-6, atol=1e-6)
  assert not np.allclose(out[:, 5:], out2[:, 5:])


def test_padding_never_changes_unpadded_outputs():
  rng = np.random.default_rng(3)
  lengths = jnp.array([6, 3])
  x = jnp.float32(rng.standard_normal((2, 6, N, DH)))
  mask = ops.padding_mask(lengths, 6)
  out, w = ops.scaled_dot_product_attention(x, x, x, mask=mask)
  noise = jnp.float32(rng.standard_normal((2, 6, N, DH))) * (jnp.arange(6) >= lengths[:, None])[..., None, None]
  out2, _ = ops.scaled_dot_product_attention(x, x + noise, x + noise, mask=mask)
  np.testing.assert_allclose(out, out2, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(w[1, :, :, 3:], 0.0)


def test_masks():
  np.testing.assert_array_equal(ops.causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
  np.testing.assert_array_equal(ops.sequence_mask(jnp.array([2, 0]), 3), [[1, 1, 0], [0, 0, 0]])
  assert ops.padding_mask(jnp.array([2, 0]), 3).shape == (2, 1, 1, 3)
  local = np.asarray(ops.local_mask(5, 1))
  want = np.abs(np.arange(5)[:, None] - np.arange(5)[None, :]) <= 1
  np.testing.assert_array_equal(local, want)
  np.testing.assert_array_equal(ops.local_mask(5, 1, causal=True), want & np.tri(5, dtype=bool))
  with pytest.raises(ValueError, match="window must be >= 0, got -1"):
    ops.local_mask(5, -1)


def test_attention_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"must be \(B,T,N,d\)"):
    ops.scaled_dot_product_attention(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 4)))


def test_additive_attention_matches_formula():
  rng = np.random.default_rng(4)
  dq, dk, a = 5, 6, 7
  p = {"W_q": rng.standard_normal((dq, a)), "W_k": rng.standard_normal((dk, a)),
       "v": rng.standard_normal(a), "b": rng.standard_normal(a)}
  query, keys = rng.standard_normal((B, dq)), rng.standard_normal((B, TK, dk))
  mask = np.ones((B, TK), bool)
  mask[1, 4:] = False
  scores = np.tanh((query @ p["W_q"])[:, None] + keys @ p["W_k"] + p["b"]) @ p["v"]
  want_w = ref.softmax(np.where(mask, scores, -np.inf))
  want_c = np.einsum("bk,bkd->bd", want_w, keys)
  p32 = jax.tree.map(jnp.float32, p)
  ctx, w = ops.additive_attention(p32, jnp.float32(query), jnp.float32(keys), mask=jnp.asarray(mask))
  np.testing.assert_allclose(w, want_w, **TOL)
  np.testing.assert_allclose(ctx, want_c, **TOL)
  # Several queries at once, and precomputed key projections, give the same answer.
  ctx2, w2 = ops.additive_attention(p32, jnp.float32(query)[:, None], jnp.float32(keys),
                                    mask=jnp.asarray(mask),
                                    projected_keys=ops.project_keys(p32, jnp.float32(keys)))
  np.testing.assert_allclose(ctx2[:, 0], ctx, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(w2[:, 0], w, rtol=1e-6, atol=1e-6)


def test_sinusoidal_positions_formula():
  t, d = 9, 6
  pe = np.asarray(ops.sinusoidal_positions(t, d))
  for pos in range(t):
    for i in range(d // 2):
      angle = pos / 10000 ** (2 * i / d)
      assert pe[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
      assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
  assert ops.sinusoidal_positions(4, 5).shape == (4, 5)


def test_rope_scores_depend_only_on_relative_position():
  rng = np.random.default_rng(5)
  q = jnp.float32(np.broadcast_to(rng.standard_normal((1, 1, 1, 8)), (1, 10, 1, 8)))
  k = jnp.float32(np.broadcast_to(rng.standard_normal((1, 1, 1, 8)), (1, 10, 1, 8)))
  scores = jnp.einsum("bqnd,bknd->qk", ops.rotary_embedding(q), ops.rotary_embedding(k))
  np.testing.assert_allclose(scores[2, 0], scores[7, 5], rtol=1e-4)
  np.testing.assert_allclose(scores[3, 6], scores[1, 4], rtol=1e-4)
  np.testing.assert_allclose(jnp.linalg.norm(ops.rotary_embedding(q), axis=-1),
                             jnp.linalg.norm(q, axis=-1), rtol=1e-5)


def numpy_rope(x, positions):
  """RoPE (Su et al. 2021) in float64: pair (2i, 2i+1) rotated by pos * theta_i, theta_i = 10000^(-2i/d)."""
  d = x.shape[-1]
  theta = 10000.0 ** (-2.0 * np.arange(d // 2) / d)
  angle = positions[:, :, None, None] * theta  # (B,T,1,d/2)
  x1, x2 = x[..., 0::2], x[..., 1::2]
  out = np.empty_like(x)
  out[..., 0::2] = x1 * np.cos(angle) - x2 * np.sin(angle)
  out[..., 1::2] = x1 * np.sin(angle) + x2 * np.cos(angle)
  return out


def test_rope_equals_the_numpy_rotation_with_standard_frequencies():
  rng = np.random.default_rng(6)
  x = rng.standard_normal((2, 9, 3, 8))
  default = np.broadcast_to(np.arange(9.0), (2, 9))
  np.testing.assert_allclose(ops.rotary_embedding(jnp.float32(x)), numpy_rope(x, default),
                             rtol=1e-5, atol=1e-5)
  positions = np.stack([np.arange(9.0) + 40, rng.permutation(9) * 7.0])  # (B,T) given positions
  np.testing.assert_allclose(ops.rotary_embedding(jnp.float32(x), jnp.asarray(positions)),
                             numpy_rope(x, positions), rtol=1e-4, atol=1e-4)


def loop_recurrence(a, b, h0):
  h, out = h0, []
  for t in range(b.shape[1]):
    h = a[:, t] * h + b[:, t]
    out.append(h)
  return np.stack(out, axis=1)


@settings(max_examples=8, deadline=None)
@given(length=st.integers(1, 33), use_h0=st.booleans(), complex_=st.booleans(),
       method=st.sampled_from(["associative", "sequential"]))
def test_linear_recurrence_equals_loop(length, use_h0, complex_, method):
  rng = np.random.default_rng(length)
  a = rng.uniform(-1, 1, (2, length, 3))
  b = rng.standard_normal((2, length, 3))
  if complex_:
    a = a * np.exp(1j * rng.uniform(0, 6.28, a.shape))
    b = b + 1j * rng.standard_normal(b.shape)
  h0 = rng.standard_normal((2, 3)) if use_h0 else np.zeros((2, 3))
  dtype = jnp.complex64 if complex_ else jnp.float32
  got = ops.linear_recurrence(jnp.asarray(a, dtype), jnp.asarray(b, dtype),
                              jnp.asarray(h0, jnp.float32) if use_h0 else None, method=method)
  np.testing.assert_allclose(got, loop_recurrence(a, b, h0), rtol=1e-4, atol=1e-5)


def test_linear_recurrence_methods_have_equal_gradients_and_auto_follows_the_backend():
  rng = np.random.default_rng(0)
  lam = jnp.asarray(0.95 * np.exp(1j * rng.uniform(0, 6.28, 4)), jnp.complex64)
  b = jnp.asarray(rng.standard_normal((2, 17, 4)) + 1j * rng.standard_normal((2, 17, 4)),
                  jnp.complex64)
  loss = lambda lam, b, m: jnp.sum(jnp.abs(ops.linear_recurrence(lam, b, method=m)) ** 2)
  grads = {m: jax.grad(loss, argnums=(0, 1))(lam, b, m) for m in ("associative", "sequential")}
  for g_assoc, g_seq in zip(grads["associative"], grads["sequential"]):
    np.testing.assert_allclose(g_seq, g_assoc, rtol=1e-4, atol=1e-4)
  from attnlab.ops import scan
  assert scan.resolve_method("auto") == scan.SCAN_BY_BACKEND.get(jax.default_backend(), "associative")
  with pytest.raises(ValueError, match="valid choices"):
    ops.linear_recurrence(lam, b, method="nosuch")
