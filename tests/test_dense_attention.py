"""Dense attention (stored weights, hand-written backward pass) against the plain op in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import models, ops
from attnlab.models import attention as attention_lib

B, T, N, DH = 2, 11, 3, 4
LENGTHS = np.array([T, 6])
CASES = {
    "none": ops.MaskSpec(),
    "padding": ops.MaskSpec(LENGTHS),
    "causal": ops.MaskSpec(causal=True),
    "window0": ops.MaskSpec(window=0),
    "padding+causal+window": ops.MaskSpec(LENGTHS, causal=True, window=3),
    "empty row": ops.MaskSpec(np.array([T, 0])),  # batch row 1 sees no key at all
}


def qkv(seed=0, tq=T, tk=T, dtype=jnp.float64):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.standard_normal((B, t, N, DH)), dtype) for t in (tq, tk, tk)]


def loss(fn):
  """A nonlinear loss whose weights differ per query step, so every gradient entry matters."""
  return lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v)) * jnp.arange(1, q.shape[1] + 1)[:, None, None])


def assert_same_as_plain(fn, mask, q, k, v):
  plain = lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, mask=mask)[0]
  got, want = fn(q, k, v), plain(q, k, v)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  grads = jax.grad(loss(fn), argnums=(0, 1, 2))(q, k, v)
  wants = jax.grad(loss(plain), argnums=(0, 1, 2))(q, k, v)
  for name, a, b in zip("qkv", grads, wants):
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=f"d{name}")


@pytest.mark.parametrize("pair_block", [None, 4])  # 4 -> blocks of 3 of the 6 (batch, head) pairs
@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_equal_plain_in_float64(name, pair_block):
  spec = CASES[name]
  with jax.enable_x64(True):
    fn = lambda q, k, v: ops.dense_attention(q, k, v, key_lengths=spec.key_lengths,
                                             causal=spec.causal, window=spec.window,
                                             pair_block=pair_block)
    assert_same_as_plain(fn, ops.dense_mask(spec, T, T), *qkv())


@pytest.mark.parametrize("mask_shape", [(B, N, T, T), (1, 1, T, T), (B, 1, 1, T)])
def test_array_masks_with_fully_masked_rows(mask_shape):
  mask = np.random.default_rng(1).random(mask_shape) < 0.6
  mask[..., 0, :] = False  # the first query (or, for a key mask, every query) sees nothing
  with jax.enable_x64(True):
    spec = ops.MaskSpec(LENGTHS, causal=True)
    fn = lambda q, k, v: ops.dense_attention(q, k, v, mask, key_lengths=LENGTHS, causal=True)
    assert_same_as_plain(fn, ops.dense_mask(spec, T, T) & mask, *qkv(2))


@pytest.mark.slow
def test_cross_attention_with_other_key_length():
  with jax.enable_x64(True):
    fn = lambda q, k, v: ops.dense_attention(q, k, v, key_lengths=np.array([5, 2]))
    assert_same_as_plain(fn, ops.padding_mask(np.array([5, 2]), 7), *qkv(3, tq=9, tk=7))


def test_bad_arguments_are_errors():
  q, k, v = qkv(dtype=jnp.float32)
  for kw, word in ((dict(window=-1), "window"), (dict(pair_block=0), "pair_block")):
    with pytest.raises(ValueError, match=word):
      ops.dense_attention(q, k, v, **kw)
  with pytest.raises(ValueError, match="broadcast"):
    ops.dense_attention(q, k, v, jnp.ones((T, T + 1), bool))
  with pytest.raises(ValueError, match="incompatible"):
    ops.dense_attention(q, k[..., :2], v)


@pytest.mark.slow
def test_multi_head_attention_dense_equals_plain():
  x = jnp.asarray(np.random.default_rng(4).standard_normal((B, T, 12)), jnp.float32)
  spec = ops.MaskSpec(jnp.asarray(LENGTHS), causal=True, window=2)
  layer = lambda impl: models.MultiHeadAttention(3, attention_impl=impl)
  params = layer("plain").init(jax.random.PRNGKey(0), x)
  out = lambda impl, p: layer(impl).apply(p, x, mask=spec)
  np.testing.assert_allclose(out("dense", params), out("plain", params), rtol=1e-5, atol=1e-6)
  grad = lambda impl: jax.grad(lambda p: jnp.sum(out(impl, p) ** 2))(params)
  for a, b in zip(jax.tree.leaves(grad("dense")), jax.tree.leaves(grad("plain"))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
