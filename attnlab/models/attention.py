"""Multi-head attention: project to heads, attend with `ops.scaled_dot_product_attention`, merge, project.

Parameter layout equals Flax's `nn.MultiHeadDotProductAttention` (query/key/value kernels (D,N,d),
out kernel (N,d,D')), so weights map across one to one. Init: LeCun normal kernels, zero biases.
The kernels are held by `DenseGeneralParams` (nn.DenseGeneral's names, shapes and init) and
applied here: in self-attention the query, key and value kernels are concatenated at apply time
into one (D, 3N, d) product (one read of the inputs, one product for their gradient).
The attention weights (B,N,Tq,Tk) are sown into the 'intermediates' collection as
'attention_weights' (apply with `mutable=['intermediates']` to collect them from a whole model),
and `return_weights=True` returns them directly.

`attention_impl` picks how the heads attend: 'plain' (`ops.scaled_dot_product_attention`, the
weights materialised), 'dense' (`ops.dense_attention`: weights stored, hand-written backward pass,
(batch, head) pairs in cache-sized blocks on a backend with a budget; no less CPU time than
'chunked' at T=150 in issue 30's measurement, so 'auto' does not pick it), 'chunked'
(`ops.chunked_attention`, online softmax, O(T) memory), 'fused' (`ops.fused_attention`:
jax.nn.dot_product_attention, cuDNN on GPU) or 'auto' (by backend from
`ATTENTION_BY_BACKEND`: 'chunked' on CPU, where the comparison Transformer's training step measured
1.18x (T=100), 1.92x (T=500) and 2.00x (T=1000) faster than 'plain', BENCHMARKS.md "Choices by
backend"; 'plain' elsewhere, not measured against the others there). On a backend listed in
`PAIR_BLOCK_BYTES_BY_BACKEND` (the CPU), 'chunked' attends blocks of (batch, head) pairs in turn,
each block's logits within the cache budget (`ops.cache_pair_block`): 1.58x faster than all pairs
at once at T=500 on CPU. Only 'plain' produces weights:
with the others nothing is sown, `return_weights=True` is an error, and 'chunked' and 'dense' take
no `bias`.
`mask` is a bool array broadcastable to (B,N,Tq,Tk) or an `ops.MaskSpec` (padding, causal, window),
which the 'chunked' and 'fused' paths apply without building a (Tq,Tk) array.

`attention` 'softmax' (the above) or 'uniform' (the ablation: `ops.uniform_attention`, each query
averages the values of the keys the MaskSpec lets it see, with no query/key projections and no
weights sown; self-attention only, `attention_impl` unused).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attnlab import ops

ATTENTION_IMPLS = ("plain", "dense", "chunked", "fused", "auto")
ATTENTIONS = ("softmax", "uniform")
ATTENTION_BY_BACKEND = {"cpu": "chunked"}  # what 'auto' runs (benchmarks/choices.py, attention)
# 'chunked' attends blocks of (batch, head) pairs in turn where a backend lists a cache budget: each
# block's (q chunk, k chunk) float32 logits take at most this many bytes (`ops.cache_pair_block`).
PAIR_BLOCK_BYTES_BY_BACKEND = {"cpu": 1 << 20}


def resolve_impl(impl: str) -> str:
  """'auto' -> the backend's attention from ATTENTION_BY_BACKEND ('plain' where none is listed)."""
  return ATTENTION_BY_BACKEND.get(jax.default_backend(), "plain") if impl == "auto" else impl


class DenseGeneralParams(nn.Module):
  """The kernel (in_shape + features) and bias (features) of `nn.DenseGeneral` contracting all of
  in_shape (same names, shapes and LeCun normal / zero init), returned without being applied."""
  in_shape: tuple
  features: tuple

  @nn.compact
  def __call__(self):
    flat = (int(np.prod(self.in_shape)), int(np.prod(self.features)))
    lecun = nn.initializers.lecun_normal()
    kernel = self.param("kernel", lambda rng, shape, dtype=jnp.float32:
                        lecun(rng, flat, dtype).reshape(shape),
                        tuple(self.in_shape) + tuple(self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, tuple(self.features), jnp.float32)
    return kernel, bias


def _project(x, kernel, bias, name):
  """x (...,D) @ kernel (D,N,d) + bias (N,d) -> (...,N,d), in the dtype nn.DenseGeneral promotes to;
  `name` scopes the ops (the profile's attribution: benchmarks/transformer_profile.py)."""
  with jax.named_scope(name):
    x, kernel, bias = (a.astype(jnp.result_type(x, kernel, bias)) for a in (x, kernel, bias))
    return jnp.einsum("...f,fnh->...nh", x, kernel) + bias


class MultiHeadAttention(nn.Module):
  num_heads: int
  qkv_features: Optional[int] = None  # default: the query's feature size
  out_features: Optional[int] = None  # default: the query's feature size
  use_rope: bool = False  # rotary positions on q and k (Su et al. 2021)
  attention_impl: str = "plain"  # 'plain' | 'chunked' | 'fused' | 'auto'
  attention: str = "softmax"  # 'softmax' | 'uniform'

  @nn.compact
  def __call__(self, inputs_q, inputs_kv=None, mask=None, bias=None, *, return_weights=False,
               query_index=None):
    """inputs_q (B,Tq,D), inputs_kv (B,Tk,D') (default: self-attention) -> (B,Tq,out_features).

    `query_index` (B,Q) int: self-attention of inputs_q (B,T,D) answered only at those steps ->
    (B,Q,out_features), equal to the full output's rows there: the queries only at those steps,
    the mask's rows there, attended as 'plain' whatever `attention_impl` (a few rows are O(Q T)).
    Without rotary positions the key and value projections are absorbed into the queries
    (`ops.absorbed_rows_attention`: O(Q T D N), no (T, 2N, d) keys and values); with them every
    step's key and value (one (D, 2N, d) product) and the queries' rotary positions their steps.
    What a last-step readout needs of the last block (issue 30). Same parameters.
    """
    features = self.qkv_features or inputs_q.shape[-1]
    if features % self.num_heads:
      raise ValueError(f"attention features {features} are not divisible by num_heads {self.num_heads}")
    heads = (self.num_heads, features // self.num_heads)
    dense = lambda name, x: DenseGeneralParams((x.shape[-1],), heads, name=name)()
    out_features = self.out_features or inputs_q.shape[-1]
    out_params = lambda: DenseGeneralParams(heads, (out_features,), name="out")()
    out_proj = lambda o: _out_projection(o, *out_params())
    if self.attention not in ATTENTIONS:
      raise ValueError(f"unknown attention {self.attention!r}; valid choices: {list(ATTENTIONS)}")
    index = None if query_index is None else jnp.asarray(query_index, jnp.int32)
    if index is not None and (self.attention != "softmax" or inputs_kv is not None):
      raise ValueError("query_index needs softmax self-attention (no inputs_kv)")
    if self.attention == "uniform":
      out = _uniform(_project(inputs_q, *dense("value", inputs_q), "value"), inputs_kv, mask, bias,
                     return_weights)
      return out_proj(out)
    if inputs_kv is None:  # self-attention
      (wq, bq), (wk, bk), (wv, bv) = (dense(n, inputs_q) for n in ("query", "key", "value"))
    if index is not None:  # queries at those steps, keys and values at every step
      rows = jnp.take_along_axis(inputs_q, index[:, :, None], axis=1)
      mask = _mask_rows(mask, index, inputs_q.shape[0], inputs_q.shape[1])
      if not self.use_rope and bias is None:  # keys and values absorbed into the few queries
        with jax.named_scope("absorbed_rows"):
          dtype = jnp.result_type(inputs_q, wq, bq)
          x, xq, *params = (a.astype(dtype) for a in (inputs_q, rows, wq, bq, wk, bk, wv, bv))
          out, weights = ops.absorbed_rows_attention(x, xq, *params, mask=mask)
        self.sow("intermediates", "attention_weights", weights)
        out = out_proj(out)
        return (out, weights) if return_weights else out
      q = _project(rows, wq, bq, "query")
      kv = _project(inputs_q, jnp.concatenate([wk, wv], axis=1), jnp.concatenate([bk, bv], axis=0),
                    "key_value")
      k, v = jnp.split(kv, 2, axis=-2)
    elif inputs_kv is None:  # self-attention: one (D, 3N, d) product for q, k and v
      qkv = _project(inputs_q, jnp.concatenate([wq, wk, wv], axis=1),
                     jnp.concatenate([bq, bk, bv], axis=0), "query_key_value")
      q, k, v = jnp.split(qkv, 3, axis=-2)
    else:
      q = _project(inputs_q, *dense("query", inputs_q), "query")
      k, v = (_project(inputs_kv, *dense(n, inputs_kv), n) for n in ("key", "value"))
    if self.use_rope:
      q, k = ops.rotary_embedding(q, index), ops.rotary_embedding(k)
    weights = None
    impl = "plain" if index is not None else resolve_impl(self.attention_impl)
    if impl == "plain":
      if isinstance(mask, ops.MaskSpec):
        mask = ops.dense_mask(mask, q.shape[1], k.shape[1])
      out, weights = ops.scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
      self.sow("intermediates", "attention_weights", weights)
    else:
      out = _attend(impl, q, k, v, mask, bias, return_weights)
    out = out_proj(out)
    return (out, weights) if return_weights else out


def _mask_rows(mask, index, batch: int, length: int):
  """The rows at query steps index (B,Q) of a self-attention mask (an ops.MaskSpec, a bool array
  broadcastable to (B,N,T,T), or None) -> (B,1 or N,Q,T) bool, or None."""
  if mask is None:
    return None
  if isinstance(mask, ops.MaskSpec):
    return ops.mask_rows(mask, index, length)
  mask = jnp.asarray(mask)
  heads_of_mask = mask.shape[-3] if mask.ndim == 4 else 1
  full = jnp.broadcast_to(mask, (batch, heads_of_mask, length, length))
  return jnp.take_along_axis(full, index[:, None, :, None], axis=2)


def _out_projection(o, kernel, bias):
  """o (...,N,d) @ kernel (N,d,D') + bias (D',) -> (...,D'), promoted as in nn.DenseGeneral."""
  with jax.named_scope("out"):
    o, kernel, bias = (a.astype(jnp.result_type(o, kernel, bias)) for a in (o, kernel, bias))
    return jnp.einsum("...nh,nhf->...f", o, kernel) + bias


def _uniform(v, inputs_kv, mask, bias, return_weights):
  """`ops.uniform_attention` of the self-attention values v (B,T,N,d) under a MaskSpec mask."""
  if inputs_kv is not None or bias is not None or return_weights:
    raise ValueError("attention='uniform' is self-attention with fixed weights: no inputs_kv, no "
                     "bias, no returned weights")
  if mask is not None and not isinstance(mask, ops.MaskSpec):
    raise ValueError("attention='uniform' takes its mask as an ops.MaskSpec, not a bool array")
  spec = mask or ops.MaskSpec()
  return ops.uniform_attention(v, spec.key_lengths, causal=spec.causal, window=spec.window)


def _attend(impl, q, k, v, mask, bias, return_weights):
  """The 'chunked' or 'fused' attention of q, k, v (B,T,N,d) -> (B,Tq,N,dv)."""
  if impl not in ATTENTION_IMPLS:
    raise ValueError(f"unknown attention_impl {impl!r}; valid choices: {list(ATTENTION_IMPLS)}")
  if return_weights:
    raise ValueError(f"return_weights needs attention_impl='plain', not {impl!r}")
  spec = mask if isinstance(mask, ops.MaskSpec) else ops.MaskSpec()
  kw = dict(key_lengths=spec.key_lengths, causal=spec.causal, window=spec.window,
            mask=None if isinstance(mask, ops.MaskSpec) else mask)
  if impl == "fused":
    return ops.fused_attention(q, k, v, bias=bias, **kw)
  if bias is not None:
    raise ValueError(f"attention_impl={impl!r} takes no additive bias; use 'plain' or 'fused'")
  budget = PAIR_BLOCK_BYTES_BY_BACKEND.get(jax.default_backend())
  if impl == "dense":  # one block's whole (Tq,Tk) logits within the budget
    if budget is not None:
      kw["pair_block"] = ops.cache_pair_block(q.shape[0], q.shape[2], q.shape[1], k.shape[1],
                                              budget, q_chunk=q.shape[1], k_chunk=k.shape[1])
    return ops.dense_attention(q, k, v, **kw)
  if budget is not None:
    kw["pair_block"] = ops.cache_pair_block(q.shape[0], q.shape[2], q.shape[1], k.shape[1], budget)
  return ops.chunked_attention(q, k, v, **kw)


class AdditiveAttentionParameters(nn.Module):
  """Parameters of Bahdanau attention for `ops.additive_attention`: W_q (Dq,A), W_k (Dk,A), v (A,), b (A,).

  Init: LeCun normal W_q, W_k and v; zero b. Calling the module returns them as a dict.
  """
  query_dim: int
  key_dim: int
  attention_size: int

  def setup(self):
    lecun = nn.initializers.lecun_normal()
    self.weights = {
        "W_q": self.param("W_q", lecun, (self.query_dim, self.attention_size)),
        "W_k": self.param("W_k", lecun, (self.key_dim, self.attention_size)),
        "v": self.param("v", lambda k, s: lecun(k, s + (1,))[:, 0], (self.attention_size,)),
        "b": self.param("b", nn.initializers.zeros, (self.attention_size,)),
    }

  def __call__(self) -> dict:
    return dict(self.weights)
