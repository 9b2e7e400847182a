"""Linear recurrences h_t = a_t * h_{t-1} + b_t evaluated in O(log T) depth.

The pair (a, b) represents the affine map h -> a * h + b. Composing "first (a_i, b_i), then
(a_j, b_j)" gives (a_j a_i, a_j b_i + b_j); this operator is associative, so
`jax.lax.associative_scan` computes every prefix composition, and the prefix applied to h0 is h_t.
Works for real and complex a, b (the LRU uses complex diagonal recurrences).
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp


def _compose(first, second):
  """Affine maps (a_i, b_i) then (a_j, b_j) -> (a_j a_i, a_j b_i + b_j)."""
  a_i, b_i = first
  a_j, b_j = second
  return a_j * a_i, a_j * b_i + b_j


@functools.partial(jax.jit, static_argnames="axis")  # one program even when called eagerly
def linear_recurrence(a: jax.Array, b: jax.Array, h0: Optional[jax.Array] = None,
                      axis: int = 1) -> jax.Array:
  """All states of h_t = a_t * h_{t-1} + b_t.

  Args:
    a: coefficients, broadcastable to b's shape.
    b: inputs, e.g. (B,T,N) with time on `axis` (default 1, batch-major).
    h0: initial state, b's shape without the time axis; zeros if None.
  Returns:
    h with b's shape: h[:, t] = a_t * h[:, t-1] + b_t, h[:, -1] the final state.
  """
  a = jnp.broadcast_to(a, b.shape)
  if h0 is not None:
    # Fold h0 into the first step: h_0' = a_0 h0 + b_0.
    b = b.astype(jnp.result_type(a, b, h0))
    first = jax.lax.index_in_dim(b, 0, axis, keepdims=True)
    first = first + jax.lax.index_in_dim(a, 0, axis, keepdims=True) * jnp.expand_dims(h0, axis)
    b = jax.lax.dynamic_update_slice_in_dim(b, first, 0, axis)
  _, h = jax.lax.associative_scan(_compose, (a, b), axis=axis)
  return h
