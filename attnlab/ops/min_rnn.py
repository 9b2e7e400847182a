"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): gates that see only x_t.

Shapes: batch B, time T, input D, hidden H. Params: W_x (D,kH) and b (kH,), one H-block per gate.

  min_gru   blocks z, h:  z_t = sigmoid(x_t W_z + b_z),  h~_t = g(x_t W_h + b_h)
            h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
  min_lstm  blocks f, i, h:  f_t = sigmoid(x_t W_f + b_f),  i_t = sigmoid(x_t W_i + b_i),
            h~_t = g(x_t W_h + b_h)
            f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)      (the length-independent scaling)
            h_t = f'_t * h_{t-1} + i'_t * h~_t
  g(v) = v + 1/2 for v >= 0, sigmoid(v) for v < 0 (positive, so h~ has a logarithm; the paper's g)

Both are h_t = a_t * h_{t-1} + b_t with a_t, b_t > 0 computed from x alone, so every step can be
computed at once. method='parallel' is the paper's log-space scan (Heinsen 2023):
  log h_t = a*_t + log sum_{k<=t} exp(log b_k - a*_k),  a*_t = sum_{k<=t} log a_k
with log a, log b from softplus (minGRU: log(1 - z) = -softplus(k_z), log z = -softplus(-k_z);
minLSTM: with d = softplus(-k_f) - softplus(-k_i), log f' = -softplus(d), log i' = -softplus(-d)),
plus exp(a*_t) * h0 for an initial state of either sign. Over the whole sequence |a*_t| grows
with t, and so does the float32 rounding of a*_t + log sum(...), a difference of two large
numbers: relative error against float64 (B=2, D=3, H=8, N(0, 1/4) weights) 1.1e-5 at T=100,
1.9e-4 at 1,000, 1.9e-3 at 10,000 (minLSTM alike). So the sums run within blocks of `LOG_BLOCK`
= 16 steps and the blocks are joined by an associative scan of their affine maps (still O(log T)
depth): 1.6e-6, 2.3e-6, 2.3e-6 at those lengths (blocks of 4: 8e-7; of 64: 1.3e-5 at 10,000),
against 3e-7 for the sequential form (tests/test_ops_modern.py checks < 1e-5 at T=1,999).
method='sequential' runs the equations above one step at a time (`lax.scan`). method='blocked'
runs them in blocks of `BLOCK` steps with a hand-written backward pass (`min_rnn_blocked`, with
the coefficients' derivatives written out in `*_coefficients_vjp`): the same numbers, faster on
CPU. method='auto' picks by backend from `METHOD_BY_BACKEND` (BENCHMARKS.md, "Recurrences at one
hidden size"). With `lengths`, steps t >= length leave the state unchanged and give zero outputs;
`reverse=True` runs each sequence backwards over its own valid steps.
"""
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from attnlab.ops.min_rnn_blocked import min_rnn_blocked
from attnlab.ops.recurrent import _check_sequence, _scan_over_time, _valid_steps, reverse_padded
from attnlab.ops.scan import linear_recurrence

Array = jax.Array
METHODS = ("parallel", "sequential", "blocked", "auto")
# What 'auto' picks: 'blocked' measured fastest on CPU (benchmarks/recurrences.py); elsewhere the
# paper's log-space parallel scan (not measured here against the others on an accelerator).
METHOD_BY_BACKEND = {"cpu": "blocked"}
LOG_BLOCK = 16  # steps per block of method='parallel''s log-space sums (the docstring: precision)
BLOCK = 64  # time steps per block of method='blocked' (benchmarks/recurrences.py measured 32-128)


def g(v: Array) -> Array:
  """The paper's positive activation: v + 1/2 for v >= 0, sigmoid(v) below."""
  return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def log_g(v: Array) -> Array:
  """log g(v), computed without forming g."""
  return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


def min_gru_coefficients(xw: Array) -> Tuple[Array, Array]:
  """Pre-activations (...,2H) in the order z, h -> (a, b) of h_t = a h_{t-1} + b."""
  k, v = jnp.split(xw, 2, axis=-1)
  z = jax.nn.sigmoid(k)
  return 1 - z, z * g(v)


def min_lstm_coefficients(xw: Array) -> Tuple[Array, Array]:
  """Pre-activations (...,3H) in the order f, i, h -> (a, b) of h_t = a h_{t-1} + b."""
  kf, ki, v = jnp.split(xw, 3, axis=-1)
  f, i = jax.nn.sigmoid(kf), jax.nn.sigmoid(ki)
  return f / (f + i), i / (f + i) * g(v)


def _g_and_slope(v: Array) -> Tuple[Array, Array]:
  """g(v) and g'(v): 1 for v >= 0, sigmoid(v) (1 - sigmoid(v)) below."""
  s = jax.nn.sigmoid(v)
  return g(v), jnp.where(v >= 0, 1.0, s * (1 - s))


def min_gru_coefficients_vjp(xw: Array, da: Array, db: Array) -> Array:
  """d(xw) (...,2H) from the cotangents of (a, b) = min_gru_coefficients(xw), in one pass:
  with z = sigmoid(k_z): dk_z = z (1 - z) (g db - da),  dv = z g'(v) db."""
  k, v = jnp.split(xw, 2, axis=-1)
  z = jax.nn.sigmoid(k)
  gv, slope = _g_and_slope(v)
  return jnp.concatenate([z * (1 - z) * (gv * db - da), z * slope * db], axis=-1)


def min_lstm_coefficients_vjp(xw: Array, da: Array, db: Array) -> Array:
  """d(xw) (...,3H) from the cotangents of (a, b) = min_lstm_coefficients(xw), in one pass:
  with a = f' and i' = 1 - a, e = a i' (da - g db):  dk_f = e (1 - f),  dk_i = -e (1 - i),
  dv = i' g'(v) db."""
  kf, ki, v = jnp.split(xw, 3, axis=-1)
  f, i = jax.nn.sigmoid(kf), jax.nn.sigmoid(ki)
  a, i_scaled = f / (f + i), i / (f + i)
  gv, slope = _g_and_slope(v)
  e = a * i_scaled * (da - gv * db)
  return jnp.concatenate([e * (1 - f), -e * (1 - i), i_scaled * slope * db], axis=-1)


COEFFICIENTS = {"min_gru": min_gru_coefficients, "min_lstm": min_lstm_coefficients}
COEFFICIENTS_VJP = {"min_gru": min_gru_coefficients_vjp, "min_lstm": min_lstm_coefficients_vjp}


def _log_coefficients(cell: str, xw: Array) -> Tuple[Array, Array]:
  """(log a, log b) of the same recurrence, from softplus only."""
  if cell == "min_gru":
    k, v = jnp.split(xw, 2, axis=-1)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(v)
  kf, ki, v = jnp.split(xw, 3, axis=-1)
  d = jax.nn.softplus(-kf) - jax.nn.softplus(-ki)  # log(i / f)
  return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(v)


@functools.partial(jax.jit, static_argnames="block")  # one program even when called eagerly
def _log_space_scan(log_a: Array, log_b: Array, h0: Array, block: int = LOG_BLOCK) -> Array:
  """h_t = a_t h_{t-1} + b_t for all t from log a, log b (B,T,H) > -inf and any h0 (B,H).

  The log-space sums run within blocks of `block` steps (from a zero state at each block's start),
  and the states entering the blocks come from the affine maps of whole blocks by an associative
  scan (`linear_recurrence`); both parts are parallel over time."""
  batch, length, hidden = log_b.shape
  num = -(-length // block)
  pad = ((0, 0), (0, num * block - length), (0, 0))  # a = b = 1 after the last step: dropped below
  in_blocks = lambda x: jnp.pad(x, pad).reshape(batch, num, block, hidden)
  log_a, log_b = in_blocks(log_a), in_blocks(log_b)
  a_star = jnp.cumsum(log_a, axis=2)  # log of a_s ... a_1 of the block's steps 1..s
  local = jnp.exp(a_star + jax.lax.cumlogsumexp(log_b - a_star, axis=2))
  decay = jnp.exp(a_star)
  ends = linear_recurrence(decay[:, :, -1], local[:, :, -1], h0, method="associative")  # (B,num,H)
  starts = jnp.concatenate([h0[:, None], ends[:, :-1]], axis=1)
  hs = local + decay * starts[:, :, None]
  return hs.reshape(batch, num * block, hidden)[:, :length]


def _final_state(hs: Array, h0: Array, lengths) -> Array:
  """The state after each sequence's last valid step (h0 where the length is 0)."""
  if lengths is None:
    return hs[:, -1]
  lengths = jnp.asarray(lengths)
  idx = jnp.clip(lengths - 1, 0, hs.shape[1] - 1)
  last = jnp.take_along_axis(hs, idx[:, None, None], axis=1)[:, 0]
  return jnp.where((lengths > 0)[:, None], last, h0)


def _min_rnn(cell, params, x, h0, lengths, reverse, method, unroll):
  if method not in METHODS:
    raise ValueError(f"{cell}: method={method!r}; valid choices: {list(METHODS)}")
  if method == "auto":
    method = METHOD_BY_BACKEND.get(jax.default_backend(), "parallel")
  _check_sequence(x, params["W_x"].shape[0], cell)
  dtype = jnp.result_type(x, params["W_x"], params["b"])  # that of x W_x + b
  hidden = params["W_x"].shape[-1] // (2 if cell == "min_gru" else 3)
  h0 = jnp.zeros((x.shape[0], hidden), dtype) if h0 is None else h0.astype(dtype)
  if method == "blocked":
    return _blocked(cell, params, x.astype(dtype), h0, lengths, reverse)
  xw = x @ params["W_x"] + params["b"]
  if method == "sequential":
    a, b = COEFFICIENTS[cell](xw)

    def step(h, ab):
      a_t, b_t = jnp.split(ab, 2, axis=-1)
      h = a_t * h + b_t
      return h, h

    return _scan_over_time(step, h0, jnp.concatenate([a, b], axis=-1), lengths, reverse, unroll)
  if reverse:
    xw = reverse_padded(xw, lengths)
  hs = _log_space_scan(*_log_coefficients(cell, xw), h0)
  final = _final_state(hs, h0, lengths)
  return _finish(hs, final, lengths, reverse)


def _blocked(cell, params, x, h0, lengths, reverse):
  """method='blocked': x W_x + b, coefficients and recurrence block by block (min_rnn_blocked)."""
  if reverse:
    x = reverse_padded(x, lengths)
  valid = None if lengths is None else _valid_steps(lengths, x.shape[1])
  hs, final = min_rnn_blocked(COEFFICIENTS[cell], COEFFICIENTS_VJP[cell], params, x, h0, valid, BLOCK)
  return _finish(hs, final, lengths, reverse)


def _finish(hs, final, lengths, reverse):
  """Zero the outputs of invalid steps and undo the reversal."""
  if lengths is not None:
    hs = jnp.where(_valid_steps(lengths, hs.shape[1])[:, :, None], hs, 0)
  if reverse:
    hs = reverse_padded(hs, lengths)
  return hs, final


def min_gru(params: dict, x: Array, h0: Optional[Array] = None, *, lengths=None,
            reverse: bool = False, method: str = "parallel", unroll: int = 1) -> Tuple[Array, Array]:
  """minGRU over a sequence. x (B,T,D), h0 (B,H) -> (hs (B,T,H), h_T (B,H)); W_x (D,2H), b (2H,)."""
  return _min_rnn("min_gru", params, x, h0, lengths, reverse, method, unroll)


def min_lstm(params: dict, x: Array, h0: Optional[Array] = None, *, lengths=None,
             reverse: bool = False, method: str = "parallel", unroll: int = 1) -> Tuple[Array, Array]:
  """minLSTM over a sequence. x (B,T,D), h0 (B,H) -> (hs (B,T,H), h_T (B,H)); W_x (D,3H), b (3H,)."""
  return _min_rnn("min_lstm", params, x, h0, lengths, reverse, method, unroll)
