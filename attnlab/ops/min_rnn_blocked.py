"""minGRU / minLSTM in blocks of time with a hand-written backward pass: the fast form on CPU.

The same recurrence as `min_rnn` (h_t = a_t * h_{t-1} + b_t, a and b from x_t W_x + b alone), computed
block by block: for each block of `block` time steps, the input product x W_x + b, the coefficients
and `block` steps of the recurrence, so every (B, block, kH) intermediate stays in cache instead of
passing through memory as a (B, T, kH) array between XLA:CPU kernels. The backward pass
(`jax.custom_vjp`) walks the blocks in reverse, recomputing each block's product and coefficients
from x (nothing of size (B, T, kH) is stored) and running the adjoint recurrence
  dh_t = g_t + a_{t+1} dh_{t+1},   da_t = dh_t h_{t-1},   db_t = dh_t
then the coefficients' vector-Jacobian product, written out per cell (`coefficients_vjp`: one
elementwise pass, where autodiff of the coefficients and of the block's layout changes took ~15%
longer for the whole layer), gives d(x W_x + b) for the block, from which dW_x, db and dx follow by
two products. Steps marked invalid (`valid` False) have a = 1, b = 0: the state passes through
unchanged and their coefficients get no gradient; the caller zeroes their outputs.

Shapes: x (B,T,D), W_x (D,kH), b (kH,), h0 (B,H), valid (B,T) bool or None -> hs (B,T,H), h_T (B,H).
"""
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def _block_coefficients(coefficients: Callable, xw, vb):
  """Pre-activations xw (B,C,kH), vb (B,C) or None -> a, b (C,B,H), time-major for the scan."""
  a, b = coefficients(xw)
  if vb is not None:
    a = jnp.where(vb[..., None], a, jnp.ones_like(a))
    b = jnp.where(vb[..., None], b, jnp.zeros_like(b))
  return jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)


def _pad_time(v, length: int, value=0):
  pad = length - v.shape[1]
  if pad == 0:
    return v
  return jnp.pad(v, [(0, 0), (0, pad)] + [(0, 0)] * (v.ndim - 2), constant_values=value)


def _forward(coefficients, block, w, bias, x, h0, valid):
  """-> hs (B,K*C,H) over the padded time axis, h_T (B,H)."""
  num_blocks = x.shape[1] // block

  def step(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  def body(k, carry):
    h, hs = carry
    xb = jax.lax.dynamic_slice_in_dim(x, k * block, block, axis=1)
    vb = None if valid is None else jax.lax.dynamic_slice_in_dim(valid, k * block, block, axis=1)
    h, hb = jax.lax.scan(step, h, _block_coefficients(coefficients, xb @ w + bias, vb))
    return h, jax.lax.dynamic_update_slice_in_dim(hs, jnp.swapaxes(hb, 0, 1), k * block, axis=1)

  hs = jnp.zeros(x.shape[:2] + h0.shape[1:], h0.dtype)
  h, hs = jax.lax.fori_loop(0, num_blocks, body, (h0, hs))
  return hs, h


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _blocked(coefficients, coefficients_vjp, block, w, bias, x, h0, valid):
  return _forward(coefficients, block, w, bias, x, h0, valid)


def _blocked_fwd(coefficients, coefficients_vjp, block, w, bias, x, h0, valid):
  hs, h = _forward(coefficients, block, w, bias, x, h0, valid)
  return (hs, h), (w, bias, x, h0, valid, hs)


def _blocked_bwd(coefficients, coefficients_vjp, block, residuals, cotangents):
  w, bias, x, h0, valid, hs = residuals
  g_hs, g_h = cotangents
  num_blocks = x.shape[1] // block

  def adjoint_step(carry, inp):
    a_t, g_t = inp
    dh = g_t + carry  # dL/dh_t: its own cotangent and what flows back from h_{t+1}
    return a_t * dh, dh

  def body(i, carry):
    dh, dw, dbias, dx = carry
    start = (num_blocks - 1 - i) * block
    piece = lambda v: jax.lax.dynamic_slice_in_dim(v, start, block, axis=1)
    xb, vb = piece(x), None if valid is None else piece(valid)
    xw = xb @ w + bias  # (B,C,kH), recomputed
    a, _ = _block_coefficients(coefficients, xw, vb)  # (C,B,H); XLA drops the unused b
    dh, dhb = jax.lax.scan(adjoint_step, dh, (a, jnp.swapaxes(piece(g_hs), 0, 1)), reverse=True)
    h_in = jnp.where(start > 0, jax.lax.dynamic_index_in_dim(hs, start - 1, 1, False), h0)
    h_prev = jnp.concatenate([h_in[None], jnp.swapaxes(piece(hs), 0, 1)[:-1]], axis=0)  # (C,B,H)
    da = dhb * h_prev
    if vb is not None:  # invalid steps' a = 1, b = 0 are constants
      keep = jnp.swapaxes(vb, 0, 1)[..., None]
      da, dhb = jnp.where(keep, da, 0), jnp.where(keep, dhb, 0)
    dxw = coefficients_vjp(xw, jnp.swapaxes(da, 0, 1), jnp.swapaxes(dhb, 0, 1))  # (B,C,kH)
    dxb = dxw @ w.T
    return (dh, dw + jnp.einsum("bcd,bck->dk", xb, dxw), dbias + dxw.sum((0, 1)),
            jax.lax.dynamic_update_slice_in_dim(dx, dxb, start, axis=1))

  init = (g_h, jnp.zeros_like(w), jnp.zeros_like(bias), jnp.zeros_like(x))
  dh0, dw, dbias, dx = jax.lax.fori_loop(0, num_blocks, body, init)
  return dw, dbias, dx, dh0, None


_blocked.defvjp(_blocked_fwd, _blocked_bwd)


def _block_size(length: int, block: int) -> int:
  """A block of about `block` steps that divides `length` (no padding) if one of at least block/2
  does, else `block` (the last block padded)."""
  if length <= block:
    return max(length, 1)
  for size in range(block, block // 2 - 1, -1):
    if length % size == 0:
      return size
  return block


def min_rnn_blocked(coefficients: Callable, coefficients_vjp: Callable, params: dict, x: Array,
                    h0: Array, valid: Optional[Array], block: int):
  """hs (B,T,H) (invalid steps hold the state; not zeroed) and h_T (B,H) after the last valid step.

  coefficients: pre-activations (...,kH) -> (a, b), e.g. `min_rnn.min_gru_coefficients`;
  coefficients_vjp: (pre-activations, da, db) -> d pre-activations, its vector-Jacobian product.
  """
  length = x.shape[1]
  block = _block_size(length, block)
  padded = -(-length // block) * block
  if padded != length:  # padded steps are invalid: the state passes through them
    valid = jnp.ones(x.shape[:2], bool) if valid is None else valid
    x, valid = _pad_time(x, padded), _pad_time(valid, padded, False)
  hs, h = _blocked(coefficients, coefficients_vjp, block, params["W_x"], params["b"], x, h0, valid)
  return hs[:, :length], h
