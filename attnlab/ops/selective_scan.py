"""Mamba's selective state space (S6, Gu & Dao 2023) and its short causal convolution.

Shapes: batch B, time T, channels E (Mamba's d_inner), state size N per channel, kernel width K.

  selective_scan  per channel e, with input-dependent step Delta_t (B,T,E) > 0 and B_t, C_t (B,T,N):
                    A_bar_t = exp(Delta_t A)                (zero-order hold of the diagonal A (E,N))
                    B_bar_t u_t = Delta_t B_t u_t           (the reference code's simplification of
                                                             the exact (Delta A)^-1 (exp(Delta A) - I) Delta B)
                    h_t = A_bar_t * h_{t-1} + B_bar_t u_t   (h_t (B,E,N), elementwise over (E,N))
                    y_t = C_t . h_t + D * u_t               (sum over N; D (E,) the skip)
                  method='parallel': every (A_bar_t, B_bar_t u_t) at once, then `linear_recurrence`
                  with method='associative' (`jax.lax.associative_scan`, O(log T) depth) on every
                  backend, CPU included (its 'auto' would run a sequential scan on CPU, and the
                  form GPUs and TPUs run would go untested there); method='sequential': one
                  `lax.scan` step at a time; method='blocked': blocks of `BLOCK` steps with a
                  hand-written backward pass that stores no (B,T,E,N) array
                  (`selective_scan_blocked`), the fast form on CPU.
                  All give the same numbers; 'auto' picks by backend (`METHOD_BY_BACKEND`).
  causal_conv1d   depthwise: y_t = sum_k w_k * x_{t-K+1+k} + b, zeros before step 0.

With `lengths` (B,) steps t >= length leave the state unchanged and give zero outputs (the parallel
form sets Delta_t = 0 there: A_bar = 1, B_bar u = 0); `reverse=True` runs each sequence backwards over
its own valid steps, as the recurrences of `attnlab.ops.recurrent` do.
"""
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from attnlab.ops.recurrent import _scan_over_time, _valid_steps, reverse_padded
from attnlab.ops.scan import linear_recurrence
from attnlab.ops.selective_scan_blocked import selective_scan_blocked

Array = jax.Array
METHODS = ("parallel", "sequential", "blocked", "auto")
# What 'auto' picks: 'blocked' measured fastest on CPU; elsewhere the associative scan, the form
# the Mamba paper's own kernel parallelises (not measured here against the others on an accelerator).
METHOD_BY_BACKEND = {"cpu": "blocked"}
BLOCK = 16  # time steps per block of method='blocked' (benchmarks/recurrences.py)


def causal_conv1d(x: Array, w: Array, b: Optional[Array] = None) -> Array:
  """Depthwise causal convolution. x (B,T,E), w (K,E), b (E,) -> (B,T,E); step t sees steps <= t."""
  k, t = w.shape[0], x.shape[1]
  padded = jnp.pad(x, ((0, 0), (k - 1, 0), (0, 0)))
  y = sum(padded[:, j:j + t] * w[j] for j in range(k))
  return y if b is None else y + b


def _check(u, delta, a, b, c, method):
  if method not in METHODS:
    raise ValueError(f"selective_scan: method={method!r}; valid choices: {list(METHODS)}")
  if u.ndim != 3 or delta.shape != u.shape:
    raise ValueError(f"selective_scan: u and delta must both be (B,T,E), got {u.shape}, {delta.shape}")
  want = u.shape[:2] + (a.shape[1],)
  if a.shape[0] != u.shape[2] or b.shape != want or c.shape != want:
    raise ValueError(f"selective_scan: A must be (E,N) = ({u.shape[2]},N) and B, C (B,T,N) = {want}; "
                     f"got A {a.shape}, B {b.shape}, C {c.shape}")


@functools.partial(jax.jit, static_argnames=("reverse", "method", "unroll", "block"))  # one program eagerly
def selective_scan(u: Array, delta: Array, A: Array, B: Array, C: Array, D: Optional[Array] = None,
                   h0: Optional[Array] = None, *, lengths=None, reverse: bool = False,
                   method: str = "parallel", unroll: int = 1,
                   block: int = BLOCK) -> Tuple[Array, Array]:
  """S6 over a sequence. u, delta (B,T,E), A (E,N), B, C (B,T,N), D (E,), h0 (B,E,N).

  `block`: time steps per block of method='blocked'.
  Returns y (B,T,E) and the final state h_T (B,E,N) (the state after each sequence's last valid step).
  """
  _check(u, delta, A, B, C, method)
  if method == "auto":
    method = METHOD_BY_BACKEND.get(jax.default_backend(), "parallel")
  dtype = jnp.result_type(u, delta, A, B, C)
  if h0 is None:
    h0 = jnp.zeros((u.shape[0],) + A.shape, dtype)
  if method == "sequential":
    e, n = A.shape

    def step(h, inp):
      u_t, d_t, b_t, c_t = jnp.split(inp, [e, 2 * e, 2 * e + n], axis=-1)
      h = jnp.exp(d_t[:, :, None] * A) * h + (d_t * u_t)[:, :, None] * b_t[:, None, :]
      return h, jnp.einsum("ben,bn->be", h, c_t)

    packed = jnp.concatenate([x.astype(dtype) for x in (u, delta, B, C)], axis=-1)
    y, h_last = _scan_over_time(step, h0.astype(dtype), packed, lengths, reverse, unroll)
  else:  # parallel or blocked: padding steps get delta = 0 (A_bar = 1, B_bar u = 0)
    if reverse:
      u, delta, B, C = (reverse_padded(x, lengths) for x in (u, delta, B, C))
    if lengths is not None:
      delta = jnp.where(_valid_steps(lengths, u.shape[1])[:, :, None], delta, 0)
    if method == "blocked":
      cast = lambda x: x.astype(dtype)
      y, h_last = selective_scan_blocked(cast(u), cast(delta), cast(A), cast(B), cast(C), cast(h0),
                                         block)
    else:
      a_bar = jnp.exp(delta[..., None] * A)  # (B,T,E,N)
      bu = (delta * u)[..., None] * B[:, :, None, :]
      h = linear_recurrence(a_bar, bu, h0.astype(dtype), method="associative")
      y = jnp.einsum("bten,btn->bte", h, C)
      h_last = h[:, -1]
    if reverse:
      y = reverse_padded(y, lengths)
      u = reverse_padded(u, lengths)
  if D is not None:
    y = y + D * u
  if lengths is not None:
    y = jnp.where(_valid_steps(lengths, u.shape[1])[:, :, None], y, 0)
  return y, h_last
