"""Memory-efficient attention: online softmax over key chunks with a recomputing backward pass.

The output equals `scaled_dot_product_attention(q, k, v, mask)[0]`, but the (Tq,Tk) weights are never
stored: queries go in chunks of about `q_chunk` (`fit_chunk`), and for each the keys in chunks of
about `k_chunk`, keeping the running maximum m, the running sum l of exp(logit - m) and the weighted
sum of values (Milakov & Gimelshein 2018; Rabe & Staats 2021; FlashAttention, Dao et al. 2022).
Memory is O(T) for fixed chunk sizes: the residuals of the backward pass are q, k, v, the output
and the log-sum-exp per query. The backward pass (`jax.custom_vjp`, FlashAttention-2 style)
recomputes each chunk's weights from the log-sum-exp, so it too stays O(T).

`pair_block` sets how many (batch, head) pairs are attended together: None takes all of them in each
chunk step (a few large operations: what accelerators want); an integer runs blocks of that many
pairs one after another (`jax.lax.map`), so a block's logits, weights and their gradients stay in
the CPU's cache instead of going through memory. `cache_pair_block` picks it from a byte budget.

Masks (True = may attend), all combinable:
  key_lengths  (B,) int: keys at steps >= key_lengths[b] are hidden (padding), never stored as (T,T)
  causal       key j <= query i (as `causal_mask`); fully masked key chunks are skipped
  window       |i - j| <= window (as `local_mask`); key chunks outside the band are skipped
  mask         any bool array broadcastable to (B,N,Tq,Tk), sliced chunk by chunk (a full (Tq,Tk)
               array is O(T^2) memory: prefer the three above)
A query with no visible key gets a zero output and zero gradients, as in the plain op. No additive
bias and no returned weights; forward-mode differentiation (jax.jvp) is not supported.
Shapes: q (B,Tq,N,d), k (B,Tk,N,d), v (B,Tk,N,dv) -> (B,Tq,N,dv). Logits and sums are float32
(float64 for float64 inputs).
"""
import math
from functools import partial
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from attnlab.ops.attention import causal_mask, local_mask, padding_mask

Array = jax.Array
CHUNK = 512  # default query and key chunk sizes, before `fit_chunk`


class MaskSpec(NamedTuple):
  """A self-attention mask described without a (T,T) array: padding, causal and local parts."""
  key_lengths: Optional[Array] = None  # (B,)
  causal: bool = False
  window: Optional[int] = None


def dense_mask(spec: MaskSpec, q_len: int, k_len: int) -> Optional[Array]:
  """The bool array of `spec`, broadcastable to (B,N,Tq,Tk); None if nothing is masked."""
  mask = None
  if spec.causal or spec.window is not None:
    mask = jnp.ones((q_len, k_len), bool)
    if spec.causal:
      mask = mask & causal_mask(max(q_len, k_len))[:q_len, :k_len]
    if spec.window is not None:
      mask = mask & local_mask(max(q_len, k_len), spec.window)[:q_len, :k_len]
  if spec.key_lengths is not None:
    keys = padding_mask(spec.key_lengths, k_len)
    mask = keys if mask is None else mask & keys
  return mask


def mask_rows(spec: MaskSpec, query_positions: Array, k_len: int) -> Array:
  """The rows of `spec`'s self-attention mask at query steps query_positions (B,Q) (int):
  (B,1,Q,Tk) bool, True = key j visible to the query at step i: j < key_lengths[b], j <= i if
  causal, |i - j| <= window if windowed. O(Q Tk), no (T,T) array."""
  i = jnp.asarray(query_positions)[:, None, :, None]
  j = jnp.arange(k_len)[None, None, None, :]
  mask = jnp.ones(i.shape[:3] + (k_len,), bool)
  if spec.causal:
    mask = mask & (j <= i)
  if spec.window is not None:
    mask = mask & (jnp.abs(i - j) <= spec.window)
  if spec.key_lengths is not None:
    mask = mask & (j < jnp.asarray(spec.key_lengths)[:, None, None, None])
  return mask


class _Config(NamedTuple):
  """Static settings of one call (hashable: the custom VJP's non-differentiable argument)."""
  q_chunk: int
  k_chunk: int
  num_q: int
  num_k: int
  causal: bool
  window: Optional[int]


def chunked_attention(q: Array, k: Array, v: Array, mask: Optional[Array] = None, *,
                      key_lengths: Optional[Array] = None, causal: bool = False,
                      window: Optional[int] = None, q_chunk: int = CHUNK,
                      k_chunk: int = CHUNK, pair_block: Optional[int] = None) -> Array:
  """softmax(q k^T / sqrt(d)) v per head without storing the weights. Shapes as the module says."""
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f"q, k, v must be (B,T,N,d); got {q.shape}, {k.shape}, {v.shape}")
  if q.shape[-1] != k.shape[-1] or k.shape[:3] != v.shape[:3] or q.shape[::2] != k.shape[::2]:
    raise ValueError(f"incompatible q, k, v shapes {q.shape}, {k.shape}, {v.shape}")
  if q_chunk <= 0 or k_chunk <= 0 or (window is not None and window < 0):
    raise ValueError(f"need q_chunk, k_chunk > 0 and window >= 0; got {q_chunk}, {k_chunk}, {window}")
  if pair_block is not None and pair_block <= 0:
    raise ValueError(f"pair_block must be a positive number of (batch, head) pairs or None; got {pair_block}")
  batch, q_len, heads, dim = q.shape
  k_len = k.shape[1]
  cq, ck = fit_chunk(q_len, q_chunk), fit_chunk(k_len, k_chunk)
  cfg = _Config(cq, ck, -(-q_len // cq), -(-k_len // ck), bool(causal), window)
  q_pad, k_pad = cfg.num_q * cq - q_len, cfg.num_k * ck - k_len
  heads_first = lambda x, pad: jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
  key_valid = None  # (B,Tk'): padding keys, given or added to fill the last chunk
  if key_lengths is not None or k_pad:
    lengths = k_len if key_lengths is None else jnp.minimum(jnp.asarray(key_lengths), k_len)
    key_valid = jnp.arange(k_len + k_pad)[None, :] < jnp.broadcast_to(lengths, (batch,))[:, None]
  if mask is not None:
    mask = jnp.asarray(mask, bool)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    if mask.shape[2] not in (1, q_len) or mask.shape[3] not in (1, k_len):
      raise ValueError(f"mask of shape {mask.shape} does not broadcast to (B,N,{q_len},{k_len})")
    mask = jnp.pad(mask, ((0, 0), (0, 0), (0, q_pad if mask.shape[2] > 1 else 0),
                          (0, k_pad if mask.shape[3] > 1 else 0)))
  q = q * jnp.asarray(1.0 / math.sqrt(dim), q.dtype)  # scaling q, not the (Tq,Tk) logits
  args = (heads_first(q, q_pad), heads_first(k, k_pad), heads_first(v, k_pad), key_valid, mask)
  if pair_block is None or pair_block >= batch * heads:
    out = _flash(*args, cfg)[0]
  else:
    out = _by_pair_blocks(*args, cfg, pair_block)
  return out.transpose(0, 2, 1, 3)[:, :q_len]


def fit_chunk(length: int, chunk: int) -> int:
  """The chunk size used for `length` steps: all of them if they fit, else the largest size in
  [chunk/2, chunk] that divides `length` (no padding, whose mask costs more than its share: at
  T=1000 on CPU, chunks of 500 ran attention forward + backward in half the time of chunks of 512),
  else `chunk` with the last chunk padded."""
  if length <= chunk:
    return max(length, 1)
  return next((c for c in range(chunk, chunk // 2 - 1, -1) if length % c == 0), chunk)


def cache_pair_block(batch: int, heads: int, q_len: int, k_len: int, budget_bytes: int,
                     q_chunk: int = CHUNK, k_chunk: int = CHUNK) -> int:
  """The largest divisor of batch * heads whose block of float32 (q chunk, k chunk) logits fits
  `budget_bytes` (at least 1): the `pair_block` that keeps a block's (Tq,Tk) work in cache."""
  pairs = batch * heads
  per_pair = 4 * fit_chunk(q_len, q_chunk) * fit_chunk(k_len, k_chunk)
  fit = max(1, budget_bytes // per_pair)
  return max(g for g in range(1, min(fit, pairs) + 1) if pairs % g == 0)


def _by_pair_blocks(q, k, v, key_valid, mask, cfg: _Config, pair_block: int) -> Array:
  """`_flash`'s output for heads-first q, k, v (B,N,T',.), run over blocks of `pair_block` (batch,
  head) pairs in turn. Each block is a batch of pairs with one head: (P,1,T',.)."""
  batch, heads = q.shape[:2]
  pairs = batch * heads
  num = -(-pairs // pair_block)
  pad = num * pair_block - pairs

  def blocks(x, head_axis=True):  # (B,N,...) -> (num, P, 1, ...) or, with no head axis, (num, P, ...)
    x = x.reshape((pairs,) + x.shape[2:])
    x = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1))
    return x.reshape((num, pair_block) + (1,) * head_axis + x.shape[1:])

  xs = dict(q=blocks(q), k=blocks(k), v=blocks(v))
  if key_valid is not None:  # padding pairs see no key: zero outputs, dropped below
    xs["key_valid"] = blocks(jnp.broadcast_to(key_valid[:, None], (batch, heads, key_valid.shape[1])),
                             head_axis=False)
  shared_mask = mask if mask is None or mask.shape[:2] == (1, 1) else None
  if mask is not None and shared_mask is None:
    xs["mask"] = blocks(jnp.broadcast_to(mask, (batch, heads) + mask.shape[2:]))

  def block(x):
    return _flash(x["q"], x["k"], x["v"], x.get("key_valid"), x.get("mask", shared_mask), cfg)[0]

  out = jax.lax.map(block, xs)  # (num, P, 1, Tq', dv)
  return out.reshape((num * pair_block,) + out.shape[3:])[:pairs].reshape(
      (batch, heads) + out.shape[3:])


# ---------------------------------------------------------------------------- chunk bookkeeping


def _slice(x: Array, axis: int, start, size: int) -> Array:
  return jax.lax.dynamic_slice_in_dim(x, start, size, axis)


def _chunk_mask(cfg: _Config, key_valid, mask, i, j) -> Optional[Array]:
  """Bool mask of query chunk i against key chunk j, broadcastable to (B,N,cq,ck); None: all True."""
  parts = []
  if key_valid is not None:
    parts.append(_slice(key_valid, 1, j * cfg.k_chunk, cfg.k_chunk)[:, None, None, :])
  q_pos = i * cfg.q_chunk + jnp.arange(cfg.q_chunk)[:, None]
  k_pos = j * cfg.k_chunk + jnp.arange(cfg.k_chunk)[None, :]
  if cfg.causal:
    parts.append(k_pos <= q_pos)
  if cfg.window is not None:
    parts.append(jnp.abs(q_pos - k_pos) <= cfg.window)
  if mask is not None:
    if mask.shape[2] > 1:
      mask = _slice(mask, 2, i * cfg.q_chunk, cfg.q_chunk)
    if mask.shape[3] > 1:
      mask = _slice(mask, 3, j * cfg.k_chunk, cfg.k_chunk)
    parts.append(mask)
  return conjunction(parts)


def conjunction(parts: list):
  """The elementwise AND of boolean masks `parts` (broadcast together), None when there are none."""
  if not parts:
    return None
  out = parts[0]
  for part in parts[1:]:
    out = out & part
  return out


def _key_range(cfg: _Config, i):
  """Key chunks [lo, hi) that query chunk i can see (by causal and window)."""
  first, last = i * cfg.q_chunk, i * cfg.q_chunk + cfg.q_chunk - 1
  lo, hi = 0, cfg.num_k
  if cfg.window is not None:
    lo = jnp.maximum(first - cfg.window, 0) // cfg.k_chunk
    hi = jnp.minimum(hi, (last + cfg.window) // cfg.k_chunk + 1)
  if cfg.causal:
    hi = jnp.minimum(hi, last // cfg.k_chunk + 1)
  return lo, hi


def _query_range(cfg: _Config, j):
  """Query chunks [lo, hi) that can see key chunk j."""
  first, last = j * cfg.k_chunk, j * cfg.k_chunk + cfg.k_chunk - 1
  lo, hi = 0, cfg.num_q
  if cfg.causal:
    lo = first // cfg.q_chunk
  if cfg.window is not None:
    lo = jnp.maximum(lo, jnp.maximum(first - cfg.window, 0) // cfg.q_chunk)
    hi = jnp.minimum(hi, (last + cfg.window) // cfg.q_chunk + 1)
  return lo, hi


def _acc(dtype):
  """What logits and sums are kept in: float32, or float64 for float64 inputs."""
  return jnp.promote_types(dtype, jnp.float32)


def _logits(q_i, k_j, valid) -> Array:
  """Logits (B,N,cq,ck) in _acc precision of the pre-scaled queries, -inf where masked."""
  s = jnp.einsum("bnqd,bnkd->bnqk", q_i, k_j, preferred_element_type=_acc(q_i.dtype))
  return s if valid is None else jnp.where(valid, s, -jnp.inf)


# ------------------------------------------------------------------------- forward and backward


def _forward(q, k, v, key_valid, mask, cfg: _Config):
  """Heads-first q (B,N,Tq',d), k, v (B,N,Tk',.) -> out (B,N,Tq',dv), log-sum-exp (B,N,Tq')."""
  batch, heads, _, _ = q.shape
  dv = v.shape[-1]
  ft = _acc(q.dtype)

  def query_chunk(i, carry):
    out, lse = carry
    q_i = _slice(q, 2, i * cfg.q_chunk, cfg.q_chunk)

    def key_chunk(j, state):
      m, l, acc = state
      s = _logits(q_i, _slice(k, 2, j * cfg.k_chunk, cfg.k_chunk),
                  _chunk_mask(cfg, key_valid, mask, i, j))
      m_new = jnp.maximum(m, s.max(axis=-1))
      m_safe = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
      p = jnp.exp(s - m_safe[..., None])
      correction = jnp.exp(m - m_safe)
      v_j = _slice(v, 2, j * cfg.k_chunk, cfg.k_chunk)
      pv = jnp.einsum("bnqk,bnkd->bnqd", p.astype(v.dtype), v_j, preferred_element_type=ft)
      return m_new, l * correction + p.sum(axis=-1), acc * correction[..., None] + pv

    shape = (batch, heads, cfg.q_chunk)
    init = (jnp.full(shape, -jnp.inf, ft), jnp.zeros(shape, ft), jnp.zeros(shape + (dv,), ft))
    m, l, acc = jax.lax.fori_loop(*_key_range(cfg, i), key_chunk, init)
    seen = l > 0
    safe_l = jnp.where(seen, l, 1.0)
    out_i = jnp.where(seen[..., None], acc / safe_l[..., None], 0.0).astype(v.dtype)
    lse_i = jnp.where(seen, jnp.where(jnp.isneginf(m), 0.0, m) + jnp.log(safe_l), 0.0)
    start = i * cfg.q_chunk
    return (jax.lax.dynamic_update_slice_in_dim(out, out_i, start, 2),
            jax.lax.dynamic_update_slice_in_dim(lse, lse_i, start, 2))

  init = (jnp.zeros(q.shape[:3] + (dv,), v.dtype), jnp.zeros(q.shape[:3], ft))
  return jax.lax.fori_loop(0, cfg.num_q, query_chunk, init)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _flash(q, k, v, key_valid, mask, cfg):
  return _forward(q, k, v, key_valid, mask, cfg)


def _flash_fwd(q, k, v, key_valid, mask, cfg):
  out, lse = _forward(q, k, v, key_valid, mask, cfg)
  return (out, lse), (q, k, v, key_valid, mask, out, lse)


def _flash_bwd(cfg, residuals, cotangents):
  q, k, v, key_valid, mask, out, lse = residuals
  d_out = cotangents[0]  # the log-sum-exp is an internal output: its cotangent is ignored
  ft = _acc(q.dtype)
  delta = jnp.einsum("bnqd,bnqd->bnq", d_out, out, preferred_element_type=ft)

  def key_chunk(j, carry):
    dq, dk, dv = carry
    k_j = _slice(k, 2, j * cfg.k_chunk, cfg.k_chunk)
    v_j = _slice(v, 2, j * cfg.k_chunk, cfg.k_chunk)

    def query_chunk(i, state):
      dq, dk_j, dv_j = state
      start = i * cfg.q_chunk
      q_i, do_i = _slice(q, 2, start, cfg.q_chunk), _slice(d_out, 2, start, cfg.q_chunk)
      s = _logits(q_i, k_j, _chunk_mask(cfg, key_valid, mask, i, j))
      p = jnp.exp(s - _slice(lse, 2, start, cfg.q_chunk)[..., None])  # 0 where masked
      dv_j = dv_j + jnp.einsum("bnqk,bnqd->bnkd", p.astype(do_i.dtype), do_i,
                               preferred_element_type=ft)
      dp = jnp.einsum("bnqd,bnkd->bnqk", do_i, v_j, preferred_element_type=ft)
      ds = (p * (dp - _slice(delta, 2, start, cfg.q_chunk)[..., None])).astype(q.dtype)
      dq_i = jnp.einsum("bnqk,bnkd->bnqd", ds, k_j, preferred_element_type=ft)
      dq = jax.lax.dynamic_update_slice_in_dim(dq, _slice(dq, 2, start, cfg.q_chunk) + dq_i,
                                               start, 2)
      dk_j = dk_j + jnp.einsum("bnqk,bnqd->bnkd", ds, q_i, preferred_element_type=ft)
      return dq, dk_j, dv_j

    zeros = jnp.zeros(k_j.shape[:3] + (k.shape[-1],), ft)
    dq, dk_j, dv_j = jax.lax.fori_loop(*_query_range(cfg, j), query_chunk,
                                       (dq, zeros, jnp.zeros(v_j.shape, ft)))
    start = j * cfg.k_chunk
    return (dq, jax.lax.dynamic_update_slice_in_dim(dk, dk_j, start, 2),
            jax.lax.dynamic_update_slice_in_dim(dv, dv_j, start, 2))

  zeros = lambda x: jnp.zeros(x.shape, ft)
  dq, dk, dv = jax.lax.fori_loop(0, cfg.num_k, key_chunk, (zeros(q), zeros(k), zeros(v)))
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None


_flash.defvjp(_flash_fwd, _flash_bwd)
