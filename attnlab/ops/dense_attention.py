"""Softmax attention that keeps its (Tq,Tk) weights for a hand-written backward pass.

The output equals `scaled_dot_product_attention(q, k, v, mask)[0]`. The forward pass stores the
probabilities P = softmax(q k^T / sqrt(d)) (O(Tq Tk) memory, as the plain op), so the backward
pass is the four products and one fused elementwise pass it needs and no more:
  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = dS K / sqrt(d),  dK = dS^T Q'
(rowsum(dO * O) = rowsum(dP * P): FlashAttention's identity, O(T d) instead of O(T^2)). Heads are
laid out as one batch of (batch, head) pairs (B*N, T, d), so each (T,T) product is one batched
dot_general with a single batch dimension. `pair_block` runs blocks of that many pairs one after
another (`jax.lax.map`) so a block's logits and their passes stay in the CPU's cache.

Masks (True = may attend), all combinable, as in `chunked_attention`: key_lengths (B,) (padding),
causal, window (|i - j| <= window; built from iotas inside the fused pass, never stored), and a bool
`mask` broadcastable to (B,N,Tq,Tk). A query with no visible key gets a zero output and zero
gradients. Shapes: q (B,Tq,N,d), k (B,Tk,N,d), v (B,Tk,N,dv) -> (B,Tq,N,dv). Logits and softmax in
float32 (float64 for float64 inputs); forward-mode differentiation is not supported.
"""
import math
from functools import partial
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from attnlab.ops.attention import sequence_mask
from attnlab.ops.chunked_attention import conjunction

Array = jax.Array


class _Config(NamedTuple):
  """Static settings of one call (the custom VJP's non-differentiable argument)."""
  causal: bool
  window: Optional[int]
  pair_block: Optional[int]


def dense_attention(q: Array, k: Array, v: Array, mask: Optional[Array] = None, *,
                    key_lengths: Optional[Array] = None, causal: bool = False,
                    window: Optional[int] = None, pair_block: Optional[int] = None) -> Array:
  """softmax(q k^T / sqrt(d)) v per head, weights stored for the backward pass. Shapes above."""
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f"q, k, v must be (B,T,N,d); got {q.shape}, {k.shape}, {v.shape}")
  if q.shape[-1] != k.shape[-1] or k.shape[:3] != v.shape[:3] or q.shape[::2] != k.shape[::2]:
    raise ValueError(f"incompatible q, k, v shapes {q.shape}, {k.shape}, {v.shape}")
  if window is not None and window < 0:
    raise ValueError(f"window must be >= 0, got {window}")
  if pair_block is not None and pair_block <= 0:
    raise ValueError(f"pair_block must be a positive number of (batch, head) pairs or None; got {pair_block}")
  batch, q_len, heads, dim = q.shape
  k_len = k.shape[1]
  pairs = batch * heads
  as_pairs = lambda x: x.transpose(0, 2, 1, 3).reshape((pairs,) + x.shape[1:2] + x.shape[3:])
  key_valid = None
  if key_lengths is not None:  # (B*N, Tk)
    key_valid = jnp.repeat(sequence_mask(jnp.asarray(key_lengths), k_len), heads, axis=0)
  if mask is not None:
    mask = jnp.asarray(mask, bool)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    if mask.shape[2] not in (1, q_len) or mask.shape[3] not in (1, k_len):
      raise ValueError(f"mask of shape {mask.shape} does not broadcast to (B,N,{q_len},{k_len})")
    mask = jnp.broadcast_to(mask, (batch, heads) + mask.shape[2:]).reshape((pairs,) + mask.shape[2:])
  block = None if pair_block is None or pair_block >= pairs else pair_block
  if block is not None and pairs % block:
    block = max(g for g in range(1, block + 1) if pairs % g == 0)
  cfg = _Config(bool(causal), window, block)
  q = q * jnp.asarray(1.0 / math.sqrt(dim), q.dtype)
  out = _attend(as_pairs(q), as_pairs(k), as_pairs(v), key_valid, mask, cfg)
  return out.reshape(batch, heads, q_len, -1).transpose(0, 2, 1, 3)


def _acc(dtype):
  return jnp.promote_types(dtype, jnp.float32)


def _visible(cfg: _Config, key_valid, mask, q_len: int, k_len: int) -> Optional[Array]:
  """Bool broadcastable to (P,Tq,Tk), True = may attend; None when nothing is masked."""
  parts = []
  if cfg.causal or cfg.window is not None:
    i = jax.lax.broadcasted_iota(jnp.int32, (q_len, k_len), 0)
    j = jax.lax.broadcasted_iota(jnp.int32, (q_len, k_len), 1)
    if cfg.causal:
      parts.append(j <= i)
    if cfg.window is not None:
      parts.append(jnp.abs(i - j) <= cfg.window)
  if key_valid is not None:
    parts.append(key_valid[:, None, :])
  if mask is not None:
    parts.append(mask)
  return conjunction(parts)


def _forward_block(q, k, v, key_valid, mask, cfg: _Config):
  """Pairs q (P,Tq,d), k (P,Tk,d), v (P,Tk,dv) -> out (P,Tq,dv), probabilities (P,Tq,Tk)."""
  ft = _acc(q.dtype)
  s = jnp.einsum("pqd,pkd->pqk", q, k, preferred_element_type=ft)
  visible = _visible(cfg, key_valid, mask, q.shape[1], k.shape[1])
  if visible is not None:
    s = jnp.where(visible, s, -jnp.inf)
  m = s.max(axis=-1, keepdims=True)
  e = jnp.exp(s - jnp.where(jnp.isneginf(m), 0.0, m))  # 0 where masked; all 0 in an empty row
  total = e.sum(axis=-1, keepdims=True)
  p = e / jnp.where(total > 0, total, 1.0)
  out = jnp.einsum("pqk,pkd->pqd", p.astype(v.dtype), v, preferred_element_type=ft)
  return out.astype(v.dtype), p


def _backward_block(q, k, v, out, p, d_out):
  """Cotangents (dq, dk, dv) of one block of pairs from its stored probabilities."""
  ft = _acc(q.dtype)
  dv = jnp.einsum("pqk,pqd->pkd", p.astype(d_out.dtype), d_out, preferred_element_type=ft)
  dp = jnp.einsum("pqd,pkd->pqk", d_out, v, preferred_element_type=ft)
  delta = jnp.einsum("pqd,pqd->pq", d_out, out, preferred_element_type=ft)[..., None]
  ds = (p * (dp - delta)).astype(q.dtype)
  dq = jnp.einsum("pqk,pkd->pqd", ds, k, preferred_element_type=ft)
  dk = jnp.einsum("pqk,pqd->pkd", ds, q, preferred_element_type=ft)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _blocks(x: Optional[Array], block: int) -> Optional[Array]:
  return None if x is None else x.reshape((x.shape[0] // block, block) + x.shape[1:])


def _unblock(x: Array) -> Array:
  return x.reshape((-1,) + x.shape[2:])


def _run_forward(q, k, v, key_valid, mask, cfg: _Config):
  if cfg.pair_block is None:
    return _forward_block(q, k, v, key_valid, mask, cfg)
  xs = [_blocks(x, cfg.pair_block) for x in (q, k, v, key_valid, mask)]
  out, p = jax.lax.map(lambda a: _forward_block(*a, cfg), xs)
  return _unblock(out), _unblock(p)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _attend(q, k, v, key_valid, mask, cfg):
  return _run_forward(q, k, v, key_valid, mask, cfg)[0]


def _attend_fwd(q, k, v, key_valid, mask, cfg):
  out, p = _run_forward(q, k, v, key_valid, mask, cfg)
  return out, (q, k, v, out, p, key_valid, mask)


def _attend_bwd(cfg, residuals, d_out):
  q, k, v, out, p, key_valid, mask = residuals
  args = (q, k, v, out, p, d_out)
  if cfg.pair_block is None:
    grads = _backward_block(*args)
  else:
    grads = tuple(_unblock(g) for g in jax.lax.map(
        lambda a: _backward_block(*a), [_blocks(x, cfg.pair_block) for x in args]))
  return grads + (None, None)


_attend.defvjp(_attend_fwd, _attend_bwd)
