"""Attention as pure functions: dot-product and additive (Bahdanau) attention, and masks.

Shapes: batch B, query steps Tq, key steps Tk, heads N, head size d. Masks are boolean with
True = may attend, and broadcast against the weights (B,N,Tq,Tk); a (Tq,Tk) mask such as
`causal_mask(T)` applies to every batch row and head. A query whose keys are all masked gets all-zero
weights and a zero output (never NaN).

`uniform_attention` is the ablation without learnt weights: each query averages the values of the
keys its mask lets it see, uniformly (with causal, position i the steps 0..i), by cumulative sums in
O(T) time and memory.
"""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

Array = jax.Array


def masked_softmax(logits: Array, mask: Optional[Array] = None) -> Array:
  """Softmax over the last axis in float32 where mask is True; rows with no True give zeros."""
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  if mask is None:
    return jax.nn.softmax(logits, axis=-1)
  mask = jnp.broadcast_to(mask, logits.shape)
  logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
  weights = jax.nn.softmax(logits, axis=-1)
  return jnp.where(mask, weights, 0.0)


def scaled_dot_product_attention(q: Array, k: Array, v: Array, mask: Optional[Array] = None,
                                 bias: Optional[Array] = None) -> Tuple[Array, Array]:
  """softmax(q k^T / sqrt(d) + bias) v, per head.

  Args:
    q: (B,Tq,N,d) queries.  k: (B,Tk,N,d) keys.  v: (B,Tk,N,dv) values.
    mask: bool, broadcastable to (B,N,Tq,Tk), True = attend.
    bias: additive logits bias broadcastable to (B,N,Tq,Tk) (e.g. relative positions).
  Returns:
    out (B,Tq,N,dv) and weights (B,N,Tq,Tk) in float32.
  """
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f"q, k, v must be (B,T,N,d); got {q.shape}, {k.shape}, {v.shape}")
  if q.shape[-1] != k.shape[-1] or k.shape[:3] != v.shape[:3]:
    raise ValueError(f"incompatible q, k, v shapes {q.shape}, {k.shape}, {v.shape}")
  logits = jnp.einsum("bqnd,bknd->bnqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
  if bias is not None:
    logits = logits + bias
  weights = masked_softmax(logits, mask)
  out = jnp.einsum("bnqk,bknd->bqnd", weights.astype(v.dtype), v)
  return out, weights


def absorbed_rows_attention(x: Array, xq: Array, wq: Array, bq: Array, wk: Array, bk: Array,
                            wv: Array, bv: Array,
                            mask: Optional[Array] = None) -> Tuple[Array, Array]:
  """Self-attention of x answered at a few query rows, with the key and value projections absorbed
  into the queries: the same numbers as projecting every step to keys and values, in O(Q T D N)
  instead of O(T D N d) (a last-step readout's last block: Q=1, issue 30).

  logits[b,n,q,t] = (q_n . (x_t W_k,n + b_k,n)) / sqrt(d) = ((W_k,n q_n) . x_t + q_n . b_k,n) / sqrt(d)
  out[b,q,n] = sum_t w_t (x_t W_v,n + b_v,n) = (sum_t w_t x_t) W_v,n + (sum_t w_t) b_v,n
  q_n . b_k,n is the same for every key of a row, which the softmax ignores: b_k gets no gradient,
  as in the projected form's exact arithmetic. sum_t w_t is 1, or 0 for a query that sees no key.
  No rotary positions (they rotate each key by its own step).

  Args:
    x: (B,T,D) the inputs every step's key and value come from.  xq: (B,Q,D) the query rows' inputs.
    wq, wk: (D,N,d) and bq, bk: (N,d).  wv: (D,N,dv), bv: (N,dv).
    mask: bool, broadcastable to (B,N,Q,T), True = attend.
  Returns:
    out (B,Q,N,dv) and weights (B,N,Q,T) in float32 (float64 for float64 inputs).
  """
  q = jnp.einsum("bqf,fnh->bqnh", xq, wq) + bq
  scale = jnp.sqrt(q.shape[-1]).astype(q.dtype)
  u = jnp.einsum("bqnh,fnh->bqnf", q, wk) / scale  # W_k,n q_n: the query in x's space
  del bk  # a constant per row of logits
  logits = jnp.einsum("bqnf,btf->bnqt", u, x)
  weights = masked_softmax(logits, mask)
  mixed = jnp.einsum("bnqt,btf->bqnf", weights.astype(x.dtype), x)  # sum_t w_t x_t per head
  total = jnp.sum(weights, axis=-1).transpose(0, 2, 1)[..., None].astype(bv.dtype)  # (B,Q,N,1)
  out = jnp.einsum("bqnf,fnh->bqnh", mixed, wv) + total * bv
  return out, weights


def uniform_attention(v: Array, key_lengths: Optional[Array] = None, *, causal: bool = False,
                      window: Optional[int] = None) -> Array:
  """Self-attention with uniform weights: out_i = mean of v_j over the keys j that i may see.

  The keys are those of `MaskSpec(key_lengths, causal, window)`: j < key_lengths[b], j <= i if
  causal, |i - j| <= window if window is set. A query that sees no key gets zero. With S_k the sum
  of the valid v_j over j < k and n_k their count, out_i = (S_hi - S_lo) / (n_hi - n_lo) for the
  key range [lo, hi) of query i: O(T), no (T,T) array. Sums in float32 (float64 for float64 v).

  Args:
    v: (B,T,N,dv) values.  key_lengths: (B,) int or None.
  Returns:
    out (B,T,N,dv) in v's dtype.
  """
  if v.ndim != 4:
    raise ValueError(f"uniform_attention: v must be (B,T,N,d); got {v.shape}")
  if window is not None and window < 0:
    raise ValueError(f"uniform_attention: window must be >= 0, got {window}")
  batch, length = v.shape[:2]
  acc = jnp.promote_types(v.dtype, jnp.float32)
  valid = (jnp.ones((batch, length), acc) if key_lengths is None
           else sequence_mask(key_lengths, length).astype(acc))
  prefix = lambda a: jnp.concatenate([jnp.zeros_like(a[:, :1]), jnp.cumsum(a, axis=1)], axis=1)
  sums = prefix(v.astype(acc) * valid[:, :, None, None])  # (B,T+1,N,dv): sums[:, k] = S_k
  counts = prefix(valid)  # (B,T+1)
  i = jnp.arange(length)
  lo = jnp.zeros_like(i) if window is None else jnp.maximum(i - window, 0)
  hi = i + 1 if causal else jnp.full_like(i, length)
  if window is not None:
    hi = jnp.minimum(hi, i + window + 1)
  count = (counts[:, hi] - counts[:, lo])[:, :, None, None]
  out = (sums[:, hi] - sums[:, lo]) / jnp.maximum(count, 1.0)
  return jnp.where(count > 0, out, 0.0).astype(v.dtype)


def additive_attention(params: dict, query: Array, keys: Array, values: Optional[Array] = None,
                       mask: Optional[Array] = None,
                       projected_keys: Optional[Array] = None) -> Tuple[Array, Array]:
  """Bahdanau attention: e_j = v^T tanh(W_q q + W_k k_j + b), weights = softmax(e), context = sum_j w_j v_j.

  Args:
    params: W_q (Dq,A), W_k (Dk,A), v (A,), optional b (A,).
    query: (B,Dq) for one decoder step, or (B,Tq,Dq).
    keys: (B,Tk,Dk) encoder states; values default to keys.
    mask: bool (B,Tk), True = valid key.
    projected_keys: `project_keys(params, keys)` computed once per sequence (B,Tk,A), saving work in a decoder loop.
  Returns:
    context (B,Dv) or (B,Tq,Dv), and weights (B,Tk) or (B,Tq,Tk).
  """
  values = keys if values is None else values
  if projected_keys is None:
    projected_keys = project_keys(params, keys)
  q = query @ params["W_q"]
  single = query.ndim == 2
  if single:
    q = q[:, None, :]
  scores = jnp.tanh(q[:, :, None, :] + projected_keys[:, None, :, :]) @ params["v"]  # (B,Tq,Tk)
  weights = masked_softmax(scores, None if mask is None else mask[:, None, :])
  context = jnp.einsum("bqk,bkd->bqd", weights.astype(values.dtype), values)
  if single:
    return context[:, 0], weights[:, 0]
  return context, weights


def project_keys(params: dict, keys: Array) -> Array:
  """keys (B,Tk,Dk) -> W_k keys + b (B,Tk,A), the query-independent part of additive attention."""
  out = keys @ params["W_k"]
  return out + params["b"] if "b" in params else out


# ------------------------------------------------------------------------------------------ masks


def causal_mask(length: int) -> Array:
  """(T,T) bool, True where key j <= query i."""
  return jnp.tril(jnp.ones((length, length), dtype=bool))


def sequence_mask(lengths: Array, length: int) -> Array:
  """(B,T) bool, True at the first lengths[b] steps of each sequence."""
  return jnp.arange(length)[None, :] < jnp.asarray(lengths)[:, None]


def padding_mask(lengths: Array, length: int) -> Array:
  """(B,1,1,T) bool key mask for attention: keys at steps >= lengths[b] are hidden."""
  return sequence_mask(lengths, length)[:, None, None, :]


def local_mask(length: int, window: int, causal: bool = False) -> Array:
  """(T,T) bool, True where |i - j| <= window (Luong's local attention); with causal, also j <= i."""
  if window < 0:
    raise ValueError(f"local_mask: window must be >= 0, got {window}")
  i = jnp.arange(length)[:, None]
  j = jnp.arange(length)[None, :]
  mask = jnp.abs(i - j) <= window
  return mask & (j <= i) if causal else mask
