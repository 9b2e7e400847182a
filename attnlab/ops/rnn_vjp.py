"""The tanh RNN and the GRU over a sequence with hand-written backward passes (`jax.custom_vjp`).

Both take the input projection xw = x W_x + b (B,T,kH), computed outside as one product (JAX
differentiates it), and run only the recurrence here, time-major inside (see `lstm_vjp`). With m_t
True where step t is valid (`valid=None`: all steps are; valid steps form a prefix of each sequence):

  rnn_layer   h' = tanh(xw_t + h W_hh)
  gru_layer   (Cho et al. 2014, reset before W_h, `reset_after=False`):
                r, z = sigmoid(xw_{r,z} + h W_{rz} + b_{rz}),  n = tanh(xw_n + (r h) W_n + b_n)
              (reset after W_h, `reset_after=True`, as cuDNN and PyTorch):
                a = h W_h + b_h,  r, z = sigmoid(xw_{r,z} + a_{r,z}),  n = tanh(xw_n + r a_n)
              h' = (1 - z) n + z h
  (h) <- h' where m_t, else unchanged;  out_t = m_t h'

Forward: one (B,H) x (H,kH) product per step (two dependent ones for the reset-before GRU); saved
are the outputs (which double as the previous states) and, for the GRU, r, z, n (and a_n).
Backward, per step: the gate algebra for the pre-activation cotangents dp_t = dL/d(xw_t) (stored,
since they are xw's cotangent) and dh_{t-1} from one product with W^T per recurrent product. The
weight gradients are hoisted out of the loop: dW_h = sum_t h_{t-1}^T dp_t is one (H, T B) x (T B, kH)
product over all steps instead of T small ones. Autodiff of `lax.scan` instead stores every
intermediate of every step and builds (T,B,.) cotangents of each.

Reverse mode only: forward-mode differentiation of a custom_vjp function is an error (the
`lax.scan` forms in `recurrent` are differentiable in both modes).
"""
from functools import partial
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from attnlab.ops.lstm_vjp import _at, _put, _time_major

Array = jax.Array


def _previous(outs: Array, h0: Array) -> Array:
  """h_{t-1} for every t (T,B,H): h0, then the outputs (valid steps are a prefix, so an output at a
  valid step is the state)."""
  return jnp.concatenate([h0[None].astype(outs.dtype), outs[:-1]], axis=0)


def _masked(valid, t, new, old):
  if valid is None:
    return new
  return jnp.where(_at(valid, t)[:, None], new, old)


def _hoisted_grad(h_prev: Array, dp: Array, acc) -> Array:
  """sum_t h_prev_t^T dp_t over (T,B,.) arrays as one product, summed in `acc` (float32 for bf16)."""
  return jnp.matmul(h_prev.reshape(-1, h_prev.shape[-1]).T, dp.reshape(-1, dp.shape[-1]),
                    preferred_element_type=acc)


# ------------------------------------------------------------------------------------ tanh RNN


def _rnn_forward(w_hh, xw, h0, valid):
  """xw (T,B,H) -> outs (T,B,H), h_T."""
  def step(t, carry):
    h, outs = carry
    h_new = jnp.tanh(_at(xw, t) + h @ w_hh)
    out = _masked(valid, t, h_new, jnp.zeros_like(h_new))
    return _masked(valid, t, h_new, h), _put(outs, out, t)

  outs = jnp.zeros(xw.shape, xw.dtype)
  h, outs = jax.lax.fori_loop(0, xw.shape[0], step, (h0.astype(xw.dtype), outs))
  return outs, h


@jax.custom_vjp
def rnn_layer(w_hh: Array, xw: Array, h0: Array, valid: Optional[Array]) -> Tuple[Array, Array]:
  """W_hh (H,H), xw (B,T,H) = x W_xh + b_h, h0 (B,H), valid (B,T) bool or None -> outs (B,T,H), h_T."""
  xw_t, valid_t = _time_major(xw, valid)
  outs, h = _rnn_forward(w_hh, xw_t, h0, valid_t)
  return outs.swapaxes(0, 1), h


def _rnn_fwd(w_hh, xw, h0, valid):
  xw_t, valid_t = _time_major(xw, valid)
  outs, h = _rnn_forward(w_hh, xw_t, h0, valid_t)
  return (outs.swapaxes(0, 1), h), (w_hh, h0, valid_t, outs)


def _rnn_bwd(residuals, cotangents):
  w_hh, h0, valid, outs = residuals
  d_outs, dh_last = cotangents
  d_outs = d_outs.swapaxes(0, 1)
  length = outs.shape[0]
  w_t = w_hh.T

  def step(k, carry):
    dh, dps = carry
    t = length - 1 - k
    h = _at(outs, t)
    dp = (dh + _at(d_outs, t)) * (1.0 - h * h)
    dp = _masked(valid, t, dp, jnp.zeros_like(dp))
    return _masked(valid, t, dp @ w_t, dh), _put(dps, dp, t)

  dh0, dps = jax.lax.fori_loop(0, length, step, (dh_last.astype(outs.dtype), jnp.zeros_like(outs)))
  acc = jnp.promote_types(w_hh.dtype, jnp.float32)
  dw = _hoisted_grad(_previous(outs, h0), dps, acc)
  return dw.astype(w_hh.dtype), dps.swapaxes(0, 1), dh0.astype(h0.dtype), None


rnn_layer.defvjp(_rnn_fwd, _rnn_bwd)


# ----------------------------------------------------------------------------------------- GRU


def _gru_forward(w_h, b_h, xw, h0, valid, reset_after):
  """xw (T,B,3H) -> outs (T,B,H), h_T, gates (T,B,3H or 4H): r, z, n (and a_n when reset after)."""
  hidden = w_h.shape[0]

  def step(t, carry):
    h, outs, gates = carry
    xr, xz, xn = jnp.split(_at(xw, t), 3, axis=-1)
    if reset_after:
      a = h @ w_h + b_h
      r = jax.nn.sigmoid(xr + a[:, :hidden])
      z = jax.nn.sigmoid(xz + a[:, hidden:2 * hidden])
      n = jnp.tanh(xn + r * a[:, 2 * hidden:])
      saved = jnp.concatenate([r, z, n, a[:, 2 * hidden:]], axis=-1)
    else:
      rz = jax.nn.sigmoid(jnp.concatenate([xr, xz], axis=-1) + h @ w_h[:, :2 * hidden]
                          + b_h[:2 * hidden])
      r, z = rz[:, :hidden], rz[:, hidden:]
      n = jnp.tanh(xn + (r * h) @ w_h[:, 2 * hidden:] + b_h[2 * hidden:])
      saved = jnp.concatenate([r, z, n], axis=-1)
    h_new = n + z * (h - n)
    out = _masked(valid, t, h_new, jnp.zeros_like(h_new))
    return _masked(valid, t, h_new, h), _put(outs, out, t), _put(gates, saved, t)

  length, batch, _ = xw.shape
  outs = jnp.zeros((length, batch, hidden), xw.dtype)
  gates = jnp.zeros((length, batch, (4 if reset_after else 3) * hidden), xw.dtype)
  return jax.lax.fori_loop(0, length, step, (h0.astype(xw.dtype), outs, gates))


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_layer(w_h: Array, b_h: Array, xw: Array, h0: Array, valid: Optional[Array],
              reset_after: bool = False) -> Tuple[Array, Array]:
  """W_h (H,3H), b_h (3H,), xw (B,T,3H) = x W_x + b_x (blocks r, z, n), h0 (B,H), valid (B,T) or
  None -> outs (B,T,H), h_T (B,H)."""
  xw_t, valid_t = _time_major(xw, valid)
  h, outs, _ = _gru_forward(w_h, b_h, xw_t, h0, valid_t, reset_after)
  return outs.swapaxes(0, 1), h


def _gru_fwd(w_h, b_h, xw, h0, valid, reset_after):
  xw_t, valid_t = _time_major(xw, valid)
  h, outs, gates = _gru_forward(w_h, b_h, xw_t, h0, valid_t, reset_after)
  return (outs.swapaxes(0, 1), h), (w_h, b_h, h0, valid_t, outs, gates)


def _gru_bwd(reset_after, residuals, cotangents):
  w_h, b_h, h0, valid, outs, gates = residuals
  d_outs, dh_last = cotangents
  d_outs = d_outs.swapaxes(0, 1)
  length, hidden = outs.shape[0], w_h.shape[0]
  w_t = w_h.T  # (3H,H)

  def step(k, carry):
    dh, dps, dans = carry
    t = length - 1 - k
    h_prev = jnp.where(t > 0, _at(outs, jnp.maximum(t - 1, 0)), h0.astype(outs.dtype))
    g = _at(gates, t)
    r, z, n = g[:, :hidden], g[:, hidden:2 * hidden], g[:, 2 * hidden:3 * hidden]
    d = _masked(valid, t, dh + _at(d_outs, t), jnp.zeros_like(dh))
    dpz = d * (h_prev - n) * z * (1.0 - z)
    dpn = d * (1.0 - z) * (1.0 - n * n)
    if reset_after:
      dan = dpn * r  # the cotangent of a_n = h W_n + b_n
      dpr = dpn * g[:, 3 * hidden:] * r * (1.0 - r)
      da = jnp.concatenate([dpr, dpz, dan], axis=-1)
      dh_prev = d * z + da @ w_t
    else:
      dan = None
      d_rh = dpn @ w_t[2 * hidden:]
      dpr = d_rh * h_prev * r * (1.0 - r)
      dh_prev = d * z + d_rh * r + jnp.concatenate([dpr, dpz], axis=-1) @ w_t[:2 * hidden]
    dp = jnp.concatenate([dpr, dpz, dpn], axis=-1)
    dans = dans if dan is None else _put(dans, dan, t)
    return _masked(valid, t, dh_prev, dh), _put(dps, dp, t), dans

  dps = jnp.zeros(outs.shape[:2] + (3 * hidden,), outs.dtype)
  dans = jnp.zeros(outs.shape if reset_after else (), outs.dtype)
  dh0, dps, dans = jax.lax.fori_loop(0, length, step, (dh_last.astype(outs.dtype), dps, dans))
  acc = jnp.promote_types(w_h.dtype, jnp.float32)
  h_prev = _previous(outs, h0)
  if reset_after:  # a = h W_h + b_h: its cotangent is (dp_r, dp_z, da_n)
    da = jnp.concatenate([dps[..., :2 * hidden], dans], axis=-1)
    dw = _hoisted_grad(h_prev, da, acc)
  else:  # W_rz sees h, W_n sees r h
    dw = jnp.concatenate([_hoisted_grad(h_prev, dps[..., :2 * hidden], acc),
                          _hoisted_grad(gates[..., :hidden] * h_prev, dps[..., 2 * hidden:], acc)],
                         axis=-1)
    da = dps
  db = da.sum(axis=(0, 1), dtype=acc)
  return (dw.astype(w_h.dtype), db.astype(b_h.dtype), dps.swapaxes(0, 1), dh0.astype(h0.dtype),
          None)


gru_layer.defvjp(_gru_fwd, _gru_bwd)
