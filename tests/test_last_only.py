"""A last-step readout computes the last block at the last valid step only, and that is the same
function as the full stack read at that step (issue 30).

Float64 values and gradients (parameters and inputs) of `SequenceModel` with the pruned last block
against the full stack's row read by `last_valid`, over pre-/post-LN, causal, windows, rotary
positions, padding and both attention kernels; `ops.mask_rows` against the dense mask's rows; and
`ops.absorbed_rows_attention` (the last block without rotary positions) against projecting every
step's key and value. Each model case compiles its functions in float64 (8 s for the first a
process runs, 16 s for the plain kernel's): the default suite runs one (chunked kernel, causal
window, summary readout: the absorbed path), -m slow the rest (the rotary path among them).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import ops
from attnlab.models.heads import InputEmbedding, SequenceModel, last_valid
from attnlab.models.transformer import Transformer
from tests.marks import fast_only

B, T, C = 3, 9, 2
CASES = {
    "pre_ln": dict(pre_ln=True),
    "post_ln": dict(pre_ln=False),
    "causal_window_rope": dict(pre_ln=True, causal=True, window=2, positional="rope"),
    "chunked_window": dict(pre_ln=True, window=3, attention_impl="chunked"),
    "chunked_causal_window_summary": dict(pre_ln=True, causal=True, window=2,
                                          attention_impl="chunked"),
    "chunked_rope_summary": dict(pre_ln=True, causal=True, positional="rope",
                                 attention_impl="chunked"),
}


def _model(pooling="last", **kw):
  backbone = Transformer(num_layers=2, num_heads=2, d_ff=12, **kw)
  return SequenceModel(InputEmbedding(None, 8), backbone, num_outputs=1, pooling=pooling)


def _full_readout(model, params, x, lengths):
  """The full stack's output at each sequence's last valid step, through the head."""
  def run(module, x, lengths):
    hs, _ = module.backbone(module.embed(x), lengths)
    return module.head(last_valid(hs, lengths))
  return model.apply(params, x, lengths, method=run)


@pytest.mark.parametrize("case", fast_only(sorted(CASES),
                                           keep=("chunked_causal_window_summary",)))
def test_pruned_last_block_equals_full_stack_row(case):
  kw = dict(CASES[case])
  pooling = "summary" if case.endswith("summary") else "last"
  with jax.enable_x64(True):
    model = _model(pooling, **kw)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(B, T, C)))
    lengths = jnp.asarray([T, 5, 1])
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                    jax.jit(model.init)(jax.random.PRNGKey(1), x, lengths))
    assert model.bind(params)._reads_last_step_only()
    # jitted: one compilation each instead of eager float64 op by op (20 s for the first case)
    pruned, full = jax.jit(model.apply), jax.jit(lambda *a: _full_readout(model, *a))
    for lens in (lengths, None):
      got = pruned(params, x, lens)
      want = full(params, x, lens)
      assert got.dtype == jnp.float64 and got.shape == (B, 1)
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    loss = lambda f: lambda p, x: (f(p, x, lengths) ** 2).sum()
    g_got = jax.jit(jax.grad(loss(model.apply), argnums=(0, 1)))(params, x)
    g_want = jax.jit(jax.grad(loss(lambda *a: _full_readout(model, *a)), argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_got), jax.tree_util.tree_leaves(g_want)):
      np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # steps past a sequence's end get no gradient, as in the full stack
    assert np.all(np.asarray(g_got[1])[2, 1:] == 0)


def test_full_stack_where_the_readout_needs_every_step():
  """Mean pooling, per-step outputs, uniform attention and collected intermediates keep every row."""
  assert _model().bind({})._reads_last_step_only()
  for model in (_model("mean"), _model("summary"), _model(attention="uniform")):
    assert not model.bind({})._reads_last_step_only()
  per_step = SequenceModel(InputEmbedding(None, 8), Transformer(num_layers=1, num_heads=2, d_ff=12),
                           num_outputs=1, output="step", pooling="last")
  assert not per_step.bind({})._reads_last_step_only()
  assert not _model().bind({}, mutable=["intermediates"])._reads_last_step_only()


def test_mask_rows_are_the_dense_masks_rows():
  rng = np.random.default_rng(3)
  lengths = jnp.asarray([7, 3, 1])
  index = jnp.asarray(rng.integers(0, 7, size=(3, 4)))
  for causal in (False, True):
    for window in (None, 0, 2):
      spec = ops.MaskSpec(lengths, causal, window)
      dense = jnp.broadcast_to(ops.dense_mask(spec, 7, 7), (3, 1, 7, 7))
      want = np.take_along_axis(np.asarray(dense), np.asarray(index)[:, None, :, None], axis=2)
      np.testing.assert_array_equal(ops.mask_rows(spec, index, 7), want)


def test_absorbed_rows_equal_attention_of_projected_keys_and_values():
  """`ops.absorbed_rows_attention` against projecting every step to keys and values and attending
  (float64): outputs, weights and gradients, with a padded sequence and a query that sees no key."""
  rng = np.random.default_rng(4)
  b, t, f, n, d, q_rows = 3, 7, 5, 2, 3, 2
  with jax.enable_x64(True):
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape))
    x, params = normal(b, t, f), (normal(f, n, d), normal(n, d), normal(f, n, d), normal(n, d),
                                  normal(f, n, d + 1), normal(n, d + 1))
    index = jnp.asarray(rng.integers(0, t, size=(b, q_rows)))
    mask = ops.mask_rows(ops.MaskSpec(jnp.asarray([t, 4, 0]), True, 2), index, t)

    def projected(x, wq, bq, wk, bk, wv, bv):
      proj = lambda y, w, c: jnp.einsum("btf,fnh->btnh", y, w) + c
      xq = jnp.take_along_axis(x, index[:, :, None], axis=1)
      return ops.scaled_dot_product_attention(proj(xq, wq, bq), proj(x, wk, bk), proj(x, wv, bv),
                                              mask=mask)

    def absorbed(x, *params):
      return ops.absorbed_rows_attention(x, jnp.take_along_axis(x, index[:, :, None], axis=1),
                                         *params, mask=mask)

    absorbed, projected = jax.jit(absorbed), jax.jit(projected)  # jitted: 1 s, eager float64: 5 s
    (out, weights), (want_out, want_weights) = absorbed(x, *params), projected(x, *params)
    assert out.shape == (b, q_rows, n, d + 1) and np.all(np.asarray(out)[2] == 0)
    np.testing.assert_allclose(out, want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights, want_weights, rtol=1e-10, atol=1e-12)
    loss = lambda f: lambda *a: (f(*a)[0] ** 2).sum()
    got = jax.jit(jax.grad(loss(absorbed), argnums=tuple(range(7))))(x, *params)
    want = jax.jit(jax.grad(loss(projected), argnums=tuple(range(7))))(x, *params)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
