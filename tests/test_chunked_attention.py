"""Chunked (online-softmax) and fused attention against `ops.scaled_dot_product_attention`."""
import importlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from attnlab import models, ops
from attnlab.ops.chunked_attention import fit_chunk
from tests import reference as ref

B, T, N, DH = 2, 37, 3, 8
LENGTHS = jnp.array([T, 20])
TOL = dict(rtol=2e-5, atol=2e-5)


def qkv(tq=T, tk=T, seed=0):
  rng = np.random.default_rng(seed)
  shapes = [(B, tq, N, DH), (B, tk, N, DH), (B, tk, N, DH)]
  return [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in shapes]


SPECS = {
    "none": ops.MaskSpec(),
    "causal": ops.MaskSpec(causal=True),
    "padding": ops.MaskSpec(LENGTHS),
    "padding+causal": ops.MaskSpec(LENGTHS, causal=True),
    "padding+causal+window": ops.MaskSpec(LENGTHS, causal=True, window=5),
    "window": ops.MaskSpec(window=4),
}


def check_against_plain(fn, q, k, v, mask):
  """Outputs and the gradients of a nonlinear loss equal those of the plain op."""
  plain = lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, mask=mask)[0]
  np.testing.assert_allclose(fn(q, k, v), plain(q, k, v), **TOL)
  loss = lambda f: lambda q, k, v: jnp.sum(jnp.sin(f(q, k, v)) * jnp.arange(q.shape[1])[:, None, None])
  got = jax.grad(loss(fn), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(loss(plain), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("chunks", [(16, 37), pytest.param((8, 6), marks=pytest.mark.slow)])
def test_chunked_matches_plain(name, chunks):
  spec = SPECS[name]
  fn = lambda q, k, v: ops.chunked_attention(q, k, v, key_lengths=spec.key_lengths,
                                             causal=spec.causal, window=spec.window,
                                             q_chunk=chunks[0], k_chunk=chunks[1])
  check_against_plain(jax.jit(fn), *qkv(), ops.dense_mask(spec, T, T))


@pytest.mark.parametrize("q_chunk,k_chunk", [(16, 4), (4, 8)])
def test_causal_over_many_key_chunks_matches_float64_reference(q_chunk, k_chunk):
  """Causal + padding with T=37 over 10 (or 5) key chunks: a query chunk spans several key chunks,
  so the causal key range must come from its last query (and the query range from a key chunk's
  first key). Outputs against the float64 NumPy equations; gradients against the plain op."""
  q, k, v = qkv(seed=3)
  fn = jax.jit(lambda q, k, v: ops.chunked_attention(q, k, v, key_lengths=LENGTHS, causal=True,
                                                     q_chunk=q_chunk, k_chunk=k_chunk))
  mask = ref.self_attention_mask(T, np.asarray(LENGTHS), causal=True)
  want, _ = ref.attention(*(np.asarray(a, np.float64) for a in (q, k, v)), mask)
  np.testing.assert_allclose(fn(q, k, v), want, **TOL)
  check_against_plain(fn, q, k, v, jnp.asarray(mask))


def test_chunked_takes_an_array_mask_with_fully_masked_rows():
  rng = np.random.default_rng(1)
  mask = rng.random((B, 1, T, T)) < 0.5
  mask[0, 0, 3] = False  # a query that sees nothing: zero output, zero gradient
  mask = jnp.asarray(mask)
  q, k, v = qkv()
  fn = lambda q, k, v: ops.chunked_attention(q, k, v, mask, q_chunk=8, k_chunk=16)
  check_against_plain(fn, q, k, v, mask)
  np.testing.assert_array_equal(fn(q, k, v)[0, 3], 0.0)
  assert jnp.isfinite(jax.grad(lambda q: fn(q, k, v).sum())(q)).all()


@pytest.mark.slow
def test_chunked_cross_attention_with_padding():
  q, k, v = qkv(tq=11, tk=29)
  lengths = jnp.array([29, 7])
  fn = lambda q, k, v: ops.chunked_attention(q, k, v, key_lengths=lengths, q_chunk=4, k_chunk=8)
  check_against_plain(fn, q, k, v, ops.padding_mask(lengths, 29))


def test_chunked_bfloat16_is_close():
  q, k, v = qkv()
  want = ops.scaled_dot_product_attention(q, k, v, mask=ops.causal_mask(T))[0]
  got = ops.chunked_attention(*(a.astype(jnp.bfloat16) for a in (q, k, v)), causal=True, q_chunk=8,
                              k_chunk=8)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), want, atol=5e-2)


@pytest.mark.parametrize("name", ["none", "padding+causal", "padding+causal+window"])
def test_fused_matches_plain(name):
  spec = SPECS[name]
  fn = lambda q, k, v: ops.fused_attention(q, k, v, key_lengths=spec.key_lengths,
                                           causal=spec.causal, window=spec.window)
  check_against_plain(fn, *qkv(), ops.dense_mask(spec, T, T))


@pytest.mark.parametrize("name", ["padding+causal+window", "window"])
@pytest.mark.parametrize("pair_block", [1, 4])  # 4 leaves a partial block of the 6 (batch, head) pairs
def test_pair_blocks_match_plain(name, pair_block):
  spec = SPECS[name]
  fn = lambda q, k, v: ops.chunked_attention(q, k, v, key_lengths=spec.key_lengths, causal=spec.causal,
                                             window=spec.window, q_chunk=16, k_chunk=16,
                                             pair_block=pair_block)
  check_against_plain(jax.jit(fn), *qkv(), ops.dense_mask(spec, T, T))


@pytest.mark.parametrize("mask_shape", [(B, N, T, T), (1, 1, T, T), (B, 1, 1, T)])
def test_pair_blocks_take_array_masks(mask_shape):
  mask = jnp.asarray(np.random.default_rng(2).random(mask_shape) < 0.6)
  fn = lambda q, k, v: ops.chunked_attention(q, k, v, mask, q_chunk=16, k_chunk=16, pair_block=4)
  check_against_plain(jax.jit(fn), *qkv(), mask)


def test_fit_chunk_prefers_a_divisor_near_the_chunk():
  assert fit_chunk(1000, 512) == 500 and fit_chunk(2048, 512) == 512 and fit_chunk(300, 512) == 300
  assert fit_chunk(37, 8) == 8 and fit_chunk(37, 16) == 16  # a prime: padded chunks (tested above)
  assert fit_chunk(4099, 512) == 512


def test_cache_pair_block_divides_the_pairs_and_fits_the_budget():
  for batch, heads, t, budget in [(64, 4, 500, 1 << 20), (64, 4, 100, 1 << 20), (3, 5, 1000, 1 << 20),
                                  (64, 4, 20, 1 << 30), (7, 1, 2000, 1)]:
    g = ops.cache_pair_block(batch, heads, t, t, budget)
    per_pair = 4 * fit_chunk(t, 512) ** 2
    assert (batch * heads) % g == 0 and (g == 1 or g * per_pair <= budget)
    assert not any((batch * heads) % h == 0 and h * per_pair <= budget for h in range(g + 1, batch * heads + 1))
  assert ops.cache_pair_block(64, 4, 500, 500, 1 << 20) == 1  # (500 x 500) float32: 1 MB of 1 MiB
  assert ops.cache_pair_block(64, 4, 100, 100, 1 << 20) == 16  # 26 fit; 16 is the largest divisor of 256
  with pytest.raises(ValueError, match="pair_block"):
    ops.chunked_attention(*qkv(), pair_block=0)


def test_bad_shapes_are_errors():
  q, k, v = qkv()
  with pytest.raises(ValueError, match="incompatible"):
    ops.chunked_attention(q, k[..., :4], v)
  with pytest.raises(ValueError, match="does not broadcast"):
    ops.chunked_attention(q, k, v, jnp.ones((T + 1, T), bool))


# ------------------------------------------------------------------------------------- models


def transformer(impl, **kw):
  cfg = ml_collections.ConfigDict(dict(name="transformer", vocab_size=11, num_outputs=3, d_model=16,
                                       num_heads=2, d_ff=32, num_layers=2, attention_impl=impl, **kw))
  return models.build(cfg)


@pytest.mark.slow  # ~20 s of compiling two Transformers per case; the ops are compared above
@pytest.mark.parametrize("causal,impl", [(True, "chunked"), (False, "fused"), (True, "fused"), (False, "chunked")])
def test_transformer_impls_compute_the_same_function(impl, causal):
  tokens = jax.random.randint(jax.random.PRNGKey(0), (B, T), 1, 11)
  plain = transformer("plain", causal=causal, output="step", window=9 if causal else None)
  other = transformer(impl, causal=causal, output="step", window=9 if causal else None)
  variables = plain.init(jax.random.PRNGKey(1), tokens, LENGTHS)
  np.testing.assert_allclose(other.apply(variables, tokens, LENGTHS),
                             plain.apply(variables, tokens, LENGTHS), rtol=1e-4, atol=1e-5)
  loss = lambda m: lambda p: jnp.sum(m.apply({"params": p}, tokens, LENGTHS) ** 2)
  got, want = jax.grad(loss(other))(variables["params"]), jax.grad(loss(plain))(variables["params"])
  # atol 5e-5: float32 sums in another order (seen: 1.8e-5 on a gradient entry of 1.5e-3)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=5e-5), got, want)


def test_weights_only_with_plain_attention():
  x = jax.random.normal(jax.random.PRNGKey(0), (B, 5, 8))
  mha = models.MultiHeadAttention(2, attention_impl="chunked")
  variables = mha.init(jax.random.PRNGKey(1), x)
  _, state = mha.apply(variables, x, mutable=["intermediates"])
  assert not state.get("intermediates")
  with pytest.raises(ValueError, match="return_weights needs attention_impl='plain'"):
    mha.apply(variables, x, return_weights=True)
  if jax.default_backend() == "cpu":  # 'auto' (the Transformer's default) runs 'chunked' there
    auto = models.MultiHeadAttention(2, attention_impl="auto")
    assert not auto.apply(variables, x, mutable=["intermediates"])[1].get("intermediates")
    np.testing.assert_array_equal(auto.apply(variables, x), mha.apply(variables, x))
  with pytest.raises(ValueError, match="valid choices"):
    models.build(ml_collections.ConfigDict(dict(name="transformer", attention_impl="flash")))


def test_fused_zeroes_queries_that_see_no_key():
  rng = np.random.default_rng(2)
  mask = rng.random((B, 1, T, T)) < 0.5
  mask[1, 0, 5] = False
  q, k, v = qkv()
  fn = lambda q, k, v: ops.fused_attention(q, k, v, jnp.asarray(mask), causal=True)
  check_against_plain(fn, q, k, v, jnp.asarray(mask) & ops.causal_mask(T))


def test_fused_warns_once_why_it_falls_back_to_xla(monkeypatch):
  fused = importlib.import_module("attnlab.ops.fused_attention")  # the module, not the function
  monkeypatch.setattr(fused, "_WARNED", set())
  q, k, v = qkv(tq=4, tk=4)
  with pytest.warns(RuntimeWarning) as record:
    for _ in range(3):
      ops.fused_attention(q, k, v, causal=True)
  backend = jax.default_backend()
  want = (f"the {backend} backend has no cuDNN" if backend != "gpu" else
          "cuDNN's fused kernel takes bfloat16/float16 inputs, not float32")
  # only fused_attention's own warnings: others (e.g. a compilation-cache read by a concurrent test
  # process) may be recorded too and are not what this test is about
  ours = [str(w.message) for w in record if str(w.message).startswith("fused_attention:")]
  assert ours == [
      f"fused_attention: {want}; using JAX's XLA attention instead, which materialises the "
      "(Tq, Tk) logits (O(T^2) memory)"]
