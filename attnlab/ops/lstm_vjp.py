"""A whole LSTM layer with a hand-written backward pass (`jax.custom_vjp`).

Gates in the "tanh form": sigmoid(z) = 0.5 + 0.5 tanh(z / 2), so one tanh over (B,4H) gives all four
gates once the pre-activations are scaled by s = (1/2, 1/2, 1, 1/2) per gate block (i, f, g, o).
Scaling by powers of two is exact, so this is the function of `recurrent.lstm_cell`. With the fused
weight W = s * [W_x; W_h] (D+H,4H), per step t, and m (B,) True where step t is valid (`valid=None`:
all steps are):
  u = tanh([x_t, h] W + s b);  i, f, o = 0.5 + 0.5 u_{i,f,o},  g = u_g
  c' = f c + i g;  h' = o tanh(c');  (h, c) <- (h', c') where m, else unchanged;  out_t = m h'

Forward: one (B,D+H) x (D+H,4H) product per step; saved are u (T,B,4H) and the cells (T,B,H) (the
outputs double as the previous hidden states, since valid steps form a prefix of each sequence).
Backward, per step: the gate algebra for du_t = dL/d(pre-activation), then [dx_t, dh_{t-1}] =
du_t W^T as one product; the weight gradient dW = sum_t [x_t, h_{t-1}]^T du_t is accumulated one
product per step, with [x, h]^T laid out before it (blocks of 2-8 steps per product measured
slower); dW and db are summed in float32 when the compute dtype is narrower (bfloat16), then cast. Unlike autodiff of `lax.scan`, nothing but u and c is stored and no (T,B,.) cotangent
arrays are built.

Everything inside runs time-major (T,B,.): a step reads and writes contiguous (B,.) blocks; XLA:CPU
compiles a dynamic slice along axis 1 of a batch-major array into a much slower loop. The layout
changes and the non-transposed weight-gradient product made the backward pass ~1.5x faster at
B=64, H=64 (`python -m benchmarks.run --sections=lstm,vmap`).

Valid steps must form a prefix of each sequence (as `lengths` gives). Reverse mode only: forward-mode
differentiation (jax.jvp, jax.jacfwd) of a custom_vjp function is an error.
"""
from functools import partial
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

Array = jax.Array


def gate_scale(hidden: int, dtype) -> Array:
  """s (4H,): 1/2 on the sigmoid blocks i, f, o and 1 on the tanh block g."""
  return jnp.repeat(jnp.array([0.5, 0.5, 1.0, 0.5], dtype), hidden)


def _fused(w_x, w_h, b):
  """(W (D+H,4H), s b (4H,), s (4H,))."""
  s = gate_scale(w_h.shape[0], w_h.dtype)
  return jnp.concatenate([w_x, w_h], axis=0) * s, b * s, s


def _split(u: Array, hidden: int):
  return tuple(u[:, k * hidden:(k + 1) * hidden] for k in range(4))


def _at(a: Array, t) -> Array:
  """a[t] of a time-major (T,B,...) array, t traced: one contiguous block."""
  return jax.lax.dynamic_index_in_dim(a, t, axis=0, keepdims=False)


def _put(a: Array, x: Array, t) -> Array:
  """a[t] = x."""
  return jax.lax.dynamic_update_index_in_dim(a, x, t, axis=0)


def _forward(w_x, w_h, b, x, h0, c0, valid, unroll):
  """x (T,B,D), valid (T,B) or None -> (outs (T,B,H), (h_T, c_T), u (T,B,4H), cells (T,B,H)).

  Time-major inside: each step reads and writes contiguous (B,.) blocks, which XLA:CPU fuses into
  vectorised loops (a dynamic slice along axis 1 of a batch-major array is several times slower).
  """
  length, batch, _ = x.shape
  hidden = w_h.shape[0]
  w, sb, _ = _fused(w_x, w_h, b)
  dtype = jnp.result_type(x, w, h0, c0)

  def step(t, carry):
    h, c, outs, us, cells = carry
    u = jnp.tanh(jnp.concatenate([_at(x, t), h], axis=-1) @ w + sb)
    i, f, g, o = _split(u, hidden)
    c_new = (0.5 + 0.5 * f) * c + (0.5 + 0.5 * i) * g
    h_new = (0.5 + 0.5 * o) * jnp.tanh(c_new)
    out = h_new
    if valid is not None:
      keep = _at(valid, t)[:, None]
      c_new = jnp.where(keep, c_new, c)
      out = jnp.where(keep, h_new, jnp.zeros_like(h_new))
      h_new = jnp.where(keep, h_new, h)
    return h_new, c_new, _put(outs, out, t), _put(us, u, t), _put(cells, c_new, t)

  hs = jnp.zeros((length, batch, hidden), dtype)
  init = (h0.astype(dtype), c0.astype(dtype), hs, jnp.zeros((length, batch, 4 * hidden), dtype), hs)
  h, c, outs, us, cells = jax.lax.fori_loop(0, length, step, init, unroll=unroll)
  return outs, (h, c), us, cells


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def lstm_layer(w_x: Array, w_h: Array, b: Array, x: Array, h0: Array, c0: Array,
               valid: Optional[Array], unroll: int = 1) -> Tuple[Array, Tuple[Array, Array]]:
  """W_x (D,4H), W_h (H,4H), b (4H,), x (B,T,D), h0, c0 (B,H), valid (B,T) bool or None.

  Returns outs (B,T,H) and the final (h_T, c_T).
  """
  xt, valid_t = _time_major(x, valid)
  outs, final, _, _ = _forward(w_x, w_h, b, xt, h0, c0, valid_t, unroll)
  return outs.swapaxes(0, 1), final


def _time_major(x, valid):
  """(x (T,B,D), valid (T,B) or None) from the batch-major arguments."""
  return x.swapaxes(0, 1), None if valid is None else valid.swapaxes(0, 1)


def _fwd(w_x, w_h, b, x, h0, c0, valid, unroll):
  x, valid = _time_major(x, valid)
  outs, final, us, cells = _forward(w_x, w_h, b, x, h0, c0, valid, unroll)
  return (outs.swapaxes(0, 1), final), (w_x, w_h, b, x, h0, c0, valid, outs, us, cells)


def _bwd(unroll, residuals, cotangents):
  del unroll  # not unrolled: XLA:CPU would fuse each step's gate algebra with the elementwise
  # chain of the steps before it in the unrolled body and recompute it (measured slower)
  w_x, w_h, b, x, h0, c0, valid, outs, us, cells = residuals
  d_outs, (dh_last, dc_last) = cotangents
  d_outs = d_outs.swapaxes(0, 1)  # time-major, as the residuals
  length, d_in = x.shape[0], x.shape[2]
  hidden = w_h.shape[0]
  w, _, s = _fused(w_x, w_h, b)
  w_t = w.T

  def step(t, dh, dc):
    """Step t backwards: (dh_{t-1}, dc_{t-1}, dx_t, du_t, [x_t, h_{t-1}])."""
    ui, uf, ug, uo = _split(_at(us, t), hidden)
    before = jnp.maximum(t - 1, 0)
    c_prev = jnp.where(t > 0, _at(cells, before), c0)
    h_prev = jnp.where(t > 0, _at(outs, before), h0)
    tc = jnp.tanh(_at(cells, t))
    dh_new, dc_in = dh + _at(d_outs, t), dc
    if valid is not None:
      keep = _at(valid, t)[:, None]
      dh_new = jnp.where(keep, dh_new, jnp.zeros_like(dh_new))
      dc_in = jnp.where(keep, dc, jnp.zeros_like(dc))
    dc_new = dc_in + dh_new * (0.5 + 0.5 * uo) * (1.0 - tc * tc)
    du = jnp.concatenate([
        dc_new * ug * 0.5 * (1.0 - ui * ui),
        dc_new * c_prev * 0.5 * (1.0 - uf * uf),
        dc_new * (0.5 + 0.5 * ui) * (1.0 - ug * ug),
        dh_new * tc * 0.5 * (1.0 - uo * uo),
    ], axis=-1)
    dxh = du @ w_t
    dh_prev, dc_prev = dxh[:, d_in:], dc_new * (0.5 + 0.5 * uf)
    if valid is not None:  # invalid steps pass the cotangents through unchanged
      dh_prev = jnp.where(keep, dh_prev, dh)
      dc_prev = jnp.where(keep, dc_prev, dc)
    return dh_prev, dc_prev, dxh[:, :d_in], du, jnp.concatenate([_at(x, t), h_prev], axis=-1)

  def backward_step(k, carry):
    """Step t = T-1-k backwards, then its weight-gradient product [x_t, h_{t-1}]^T du_t."""
    dh, dc, dw, dsb, dx = carry
    t = length - 1 - k
    dh, dc, dx_t, du, xh = step(t, dh, dc)
    # [x, h]^T laid out (D+H, B) before the product: XLA:CPU runs a product with a transposed
    # operand through a much slower kernel.
    xh_t = jax.lax.optimization_barrier(xh.T)
    dw = dw + jnp.matmul(xh_t, du, preferred_element_type=acc)
    return dh, dc, dw, dsb + du.sum(axis=0, dtype=acc), _put(dx, dx_t, t)

  acc = jnp.promote_types(w.dtype, jnp.float32)  # bf16: dW and db summed over T in float32
  carry = (dh_last, dc_last, jnp.zeros(w.shape, acc), jnp.zeros(s.shape, acc), jnp.zeros_like(x))
  carry = jax.lax.fori_loop(0, length, backward_step, carry)
  dh0, dc0, dw, dsb, dx = carry
  dw = dw * s
  return (dw[:d_in].astype(w_x.dtype), dw[d_in:].astype(w_h.dtype), (dsb * s).astype(b.dtype),
          dx.swapaxes(0, 1).astype(x.dtype), dh0.astype(h0.dtype), dc0.astype(c0.dtype), None)


lstm_layer.defvjp(_fwd, _bwd)
