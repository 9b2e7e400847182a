"""Linear recurrences h_t = a_t * h_{t-1} + b_t, by associative scan (O(log T) depth) or in sequence.

The pair (a, b) represents the affine map h -> a * h + b. Composing "first (a_i, b_i), then
(a_j, b_j)" gives (a_j a_i, a_j b_i + b_j); this operator is associative, so
`jax.lax.associative_scan` computes every prefix composition, and the prefix applied to h0 is h_t.
Works for real and complex a, b (the LRU uses complex diagonal recurrences).

`method="sequential"` runs the same recurrence as one `lax.scan` step per time step: T dependent
steps of O(N) work instead of O(log T) levels of O(T N) work. Which is faster depends on the
hardware: `method="auto"` (the default) picks by backend, from `SCAN_BY_BACKEND`, measured by
`python -m benchmarks.run --sections=choices` (BENCHMARKS.md, "Choices by backend").
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


METHODS = ("auto", "associative", "sequential")
# What `auto` picks, per backend; see BENCHMARKS.md "Choices by backend" for the measurement behind
# each entry. Backends not listed (GPU, TPU: not measured against each other here) keep the
# associative scan, the parallel form the LRU and S5 papers use on accelerators.
SCAN_BY_BACKEND = {"cpu": "sequential"}


def resolve_method(method: str) -> str:
  if method not in METHODS:
    raise ValueError(f"scan method {method!r}; valid choices: {list(METHODS)}")
  if method == "auto":
    return SCAN_BY_BACKEND.get(jax.default_backend(), "associative")
  return method


@functools.partial(jax.jit, static_argnames=("axis", "method"))  # one program even called eagerly
def linear_recurrence(a: jax.Array, b: jax.Array, h0: Optional[jax.Array] = None,
                      axis: int = 1, method: str = "auto") -> jax.Array:
  """All states of h_t = a_t * h_{t-1} + b_t.

  Args:
    a: coefficients, broadcastable to b's shape.
    b: inputs, e.g. (B,T,N) with time on `axis` (default 1, batch-major).
    h0: initial state, b's shape without the time axis; zeros if None.
    method: 'associative', 'sequential' or 'auto' (by backend, see `SCAN_BY_BACKEND`).
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
  if resolve_method(method) == "sequential":
    return _sequential(a, b, axis)
  _, h = jax.lax.associative_scan(_compose, (a, b), axis=axis)
  return h


def _sequential(a, b, axis):
  """h_t = a_t h_{t-1} + b_t, one lax.scan step per t (h0 already folded into b_0)."""
  a, b = jnp.moveaxis(a, axis, 0), jnp.moveaxis(b, axis, 0)
  b = b.astype(jnp.result_type(a, b))

  def step(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  _, h = jax.lax.scan(step, jnp.zeros_like(b[0]), (a, b))
  return jnp.moveaxis(h, 0, axis)
