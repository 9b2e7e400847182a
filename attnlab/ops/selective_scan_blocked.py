"""S6 in blocks of time with a hand-written backward pass: `selective_scan`'s fast form on CPU.

The recurrence of `selective_scan` (per step: a_t = exp(Delta_t A), x_t = Delta_t u_t,
h_t = a_t * h_{t-1} + x_t B_t, y_t = C_t . h_t) without any (B,T,E,N) array: the forward pass keeps
only the state at the start of each block of `block` steps; the backward pass walks the blocks in
reverse, recomputes the block's states from its start state, then runs the adjoint recurrence
  dh_t = gy_t C_t + a_{t+1} * dh_{t+1}
  dC_t = sum_e gy_t h_t            dB_t = sum_e dh_t x_t          dx_t = sum_n dh_t B_t
  du_t = dx_t Delta_t              dDelta_t = dx_t u_t + sum_n dh_t h_{t-1} a_t A
  dA = sum_{b,t} dh_t h_{t-1} a_t Delta_t                        dh0 = a_0 * dh_0
Autodiff of a `lax.scan` would instead store every step's (B,E,N) residuals, T of them, and on a
2-core CPU a pass over such arrays costs more than the arithmetic (BENCHMARKS.md).
Invalid steps are the caller's: Delta_t = 0 there (a_t = 1, x_t = 0) leaves the state unchanged.

Shapes: u, delta (B,T,E), A (E,N), B, C (B,T,N), h0 (B,E,N) -> y (B,T,E) without D u, h_T (B,E,N).
"""
import functools

import jax
import jax.numpy as jnp

Array = jax.Array


def _step(A, h, inp):
  """One S6 step: (h_{t-1}, (u_t, Delta_t, B_t, C_t)) -> h_t, y_t."""
  u_t, d_t, b_t, c_t = inp
  h = jnp.exp(d_t[:, :, None] * A) * h + (d_t * u_t)[:, :, None] * b_t[:, None, :]
  return h, jnp.sum(h * c_t[:, None, :], axis=-1)


def _time_major_block(arrays, start, block):
  """Each (B,T,...) array's steps [start, start + block), as (block, B, ...)."""
  return tuple(jnp.swapaxes(jax.lax.dynamic_slice_in_dim(v, start, block, axis=1), 0, 1)
               for v in arrays)


def _forward(block, u, delta, A, B, C, h0):
  """-> y (B,T,E), h_T, and the state at the start of every block (K,B,E,N)."""
  num_blocks = u.shape[1] // block

  def body(k, carry):
    h, y, starts = carry
    starts = starts.at[k].set(h)
    h, yb = jax.lax.scan(functools.partial(_step, A), h,
                         _time_major_block((u, delta, B, C), k * block, block))
    return h, jax.lax.dynamic_update_slice_in_dim(y, jnp.swapaxes(yb, 0, 1), k * block, axis=1), starts

  y = jnp.zeros(u.shape, h0.dtype)
  starts = jnp.zeros((num_blocks,) + h0.shape, h0.dtype)
  return jax.lax.fori_loop(0, num_blocks, body, (h0, y, starts))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _blocked(block, u, delta, A, B, C, h0):
  h, y, _ = _forward(block, u, delta, A, B, C, h0)
  return y, h


def _blocked_fwd(block, u, delta, A, B, C, h0):
  h, y, starts = _forward(block, u, delta, A, B, C, h0)
  return (y, h), (u, delta, A, B, C, starts)


def _adjoint_step(A, carry, inp):
  """One step backwards: carry (dh from later steps (B,E,N), dA (E,N)) -> per-step gradients."""
  dh_later, dA = carry
  u_t, d_t, b_t, c_t, gy_t, h_prev, h_t = inp
  a = jnp.exp(d_t[:, :, None] * A)
  x = d_t * u_t
  dh = gy_t[:, :, None] * c_t[:, None, :] + dh_later
  dc = jnp.sum(gy_t[:, :, None] * h_t, axis=1)
  db = jnp.sum(dh * x[:, :, None], axis=1)
  dx = jnp.sum(dh * b_t[:, None, :], axis=-1)
  da_dot = dh * h_prev * a  # d(loss)/d(Delta_t A) elementwise
  dd = dx * u_t + jnp.sum(da_dot * A, axis=-1)
  dA = dA + jnp.sum(da_dot * d_t[:, :, None], axis=0)
  return (a * dh, dA), (dx * d_t, dd, db, dc)


def _blocked_bwd(block, residuals, cotangents):
  u, delta, A, B, C, starts = residuals
  gy, gh = cotangents
  num_blocks = u.shape[1] // block

  def body(i, carry):
    dh, dA, grads = carry
    k = num_blocks - 1 - i
    inputs = _time_major_block((u, delta, B, C), k * block, block)
    h_start = starts[k]

    def recompute(h, inp):
      h_new, _ = _step(A, h, inp)
      return h_new, h_new

    _, hs = jax.lax.scan(recompute, h_start, inputs)  # (block,B,E,N), in cache
    h_prev = jnp.concatenate([h_start[None], hs[:-1]], axis=0)
    (gyb,) = _time_major_block((gy,), k * block, block)
    (dh, dA), block_grads = jax.lax.scan(functools.partial(_adjoint_step, A), (dh, dA),
                                         inputs + (gyb, h_prev, hs), reverse=True)
    grads = tuple(jax.lax.dynamic_update_slice_in_dim(g, jnp.swapaxes(bg, 0, 1), k * block, axis=1)
                  for g, bg in zip(grads, block_grads))
    return dh, dA, grads

  init = (gh, jnp.zeros_like(A), tuple(jnp.zeros_like(v) for v in (u, delta, B, C)))
  dh0, dA, (du, dd, dB, dC) = jax.lax.fori_loop(0, num_blocks, body, init)
  return du, dd, dA, dB, dC, dh0


_blocked.defvjp(_blocked_fwd, _blocked_bwd)


def selective_scan_blocked(u: Array, delta: Array, A: Array, B: Array, C: Array, h0: Array,
                           block: int):
  """y (B,T,E) without the D u skip, and h_T (B,E,N); steps with delta = 0 leave h unchanged."""
  length = u.shape[1]
  block = max(1, min(block, length))
  padded = -(-length // block) * block
  if padded != length:  # padded steps have delta = 0: the state passes through them
    pad = lambda v: jnp.pad(v, ((0, 0), (0, padded - length), (0, 0)))
    u, delta, B, C = (pad(v) for v in (u, delta, B, C))
  y, h = _blocked(block, u, delta, A, B, C, h0)
  return y[:, :length], h
