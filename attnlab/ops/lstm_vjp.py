"""A whole LSTM layer with a hand-written backward pass (`jax.custom_vjp`).

Gates in the "tanh form": sigmoid(z) = 0.5 + 0.5 tanh(z / 2), so one tanh over (B,4H) gives all four
gates once the pre-activations are scaled by s = (1/2, 1/2, 1, 1/2) per gate block (i, f, g, o).
Scaling by powers of two is exact, so this is the same function as `recurrent.lstm_cell`. Per step t,
with m (B,) True where step t is valid (`valid=None`: all steps are):
  u = tanh(s * (x_t W_x + b + h W_h));  i, f, o = 0.5 + 0.5 u_{i,f,o},  g = u_g
  c' = f c + i g;  h' = o tanh(c');  (h, c) <- (h', c') where m, else unchanged;  out_t = m h'

Forward: one (B*T,D) x (D,4H) product for every step's input projection, then a loop whose only
matrix product is h W_h; it saves u (B,T,4H) and the cells (B,T,H). Backward: a loop doing the gate
algebra and dh_{t-1} = du_t (s W_h)^T per step, storing every du_t (B,T,4H); then dx, dW_x, dW_h and
db are each one large product (or sum) over all B*T steps, instead of T small accumulations inside
the loop (what autodiff of `lax.scan` does). Everything stays batch-major (B,T,.); the two operands
that a weight gradient contracts over B*T (x and the previous hidden states) are transposed once.

Valid steps must form a prefix of each sequence (as `lengths` gives): then h_{t-1} of a valid step
is out_{t-1}, and the outputs double as the saved hidden states. Reverse mode only: forward-mode
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


def _split(u: Array, hidden: int):
  return tuple(u[:, k * hidden:(k + 1) * hidden] for k in range(4))


def _at(a: Array, t) -> Array:
  """a[:, t] of a (B,T,...) array, t traced."""
  return jax.lax.dynamic_index_in_dim(a, t, axis=1, keepdims=False)


def _put(a: Array, x: Array, t) -> Array:
  """a[:, t] = x."""
  return jax.lax.dynamic_update_index_in_dim(a, x, t, axis=1)


def _forward(w_x, w_h, b, x, h0, c0, valid, unroll):
  """Returns (outs (B,T,H), (h_T, c_T), u (B,T,4H), cells (B,T,H))."""
  batch, length, _ = x.shape
  hidden = w_h.shape[0]
  s = gate_scale(hidden, w_h.dtype)
  xw = x @ (w_x * s)  # (B,T,4H); the bias is added inside the loop, where it is free
  w, sb = w_h * s, b * s

  def step(t, carry):
    h, c, outs, us, cells = carry
    u = jnp.tanh(_at(xw, t) + sb + h @ w)
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

  hs = jnp.zeros((batch, length, hidden), xw.dtype)
  init = (h0, c0, hs, jnp.zeros_like(xw), hs)
  h, c, outs, us, cells = jax.lax.fori_loop(0, length, step, init, unroll=unroll)
  return outs, (h, c), us, cells


@partial(jax.custom_vjp, nondiff_argnums=(7,))
def lstm_layer(w_x: Array, w_h: Array, b: Array, x: Array, h0: Array, c0: Array,
               valid: Optional[Array], unroll: int = 1) -> Tuple[Array, Tuple[Array, Array]]:
  """W_x (D,4H), W_h (H,4H), b (4H,), x (B,T,D), h0, c0 (B,H), valid (B,T) bool or None.

  Returns outs (B,T,H) and the final (h_T, c_T).
  """
  outs, final, _, _ = _forward(w_x, w_h, b, x, h0, c0, valid, unroll)
  return outs, final


def _fwd(w_x, w_h, b, x, h0, c0, valid, unroll):
  outs, final, us, cells = _forward(w_x, w_h, b, x, h0, c0, valid, unroll)
  return (outs, final), (w_x, w_h, x, h0, c0, valid, outs, us, cells)


def _transposed(a: Array) -> Array:
  """(B,T,F) -> (F, B*T), materialised once so the weight-gradient products need no other copy."""
  return jax.lax.optimization_barrier(a.reshape(-1, a.shape[-1]).T)


def _bwd(unroll, residuals, cotangents):
  w_x, w_h, x, h0, c0, valid, outs, us, cells = residuals
  d_outs, (dh_last, dc_last) = cotangents
  batch, length, _ = x.shape
  hidden = w_h.shape[0]
  s = gate_scale(hidden, w_h.dtype)
  w_t = (w_h * s).T

  def step(k, carry):
    dh, dc, dus = carry
    t = length - 1 - k
    ui, uf, ug, uo = _split(_at(us, t), hidden)
    c = _at(cells, t)
    c_prev = jnp.where(t > 0, _at(cells, jnp.maximum(t - 1, 0)), c0)
    tc = jnp.tanh(c)
    dh_new = dh + _at(d_outs, t)
    dc_in = dc
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
    dh_prev = du @ w_t
    dc_prev = dc_new * (0.5 + 0.5 * uf)
    if valid is not None:  # invalid steps pass the cotangents through unchanged
      dh_prev = jnp.where(keep, dh_prev, dh)
      dc_prev = jnp.where(keep, dc_prev, dc)
    return dh_prev, dc_prev, _put(dus, du, t)

  init = (dh_last, dc_last, jnp.zeros_like(us))
  dh0, dc0, dus = jax.lax.fori_loop(0, length, step, init, unroll=unroll)
  h_prev = jnp.concatenate([h0[:, None], outs[:, :-1]], axis=1)  # valid steps form a prefix
  du_flat = dus.reshape(batch * length, -1)  # the cotangent of the scaled pre-activations
  dw_h = (_transposed(h_prev) @ du_flat) * s
  dw_x = (_transposed(x) @ du_flat) * s
  db = du_flat.sum(axis=0) * s
  dx = (dus @ (w_x * s).T)
  return dw_x, dw_h, db, dx, dh0, dc0, None


lstm_layer.defvjp(_fwd, _bwd)
