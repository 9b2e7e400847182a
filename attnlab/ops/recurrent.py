"""Recurrent cells and whole-sequence recurrences as pure functions.

Parameters are plain dicts of arrays. Shapes: batch B, time T, input D, hidden H.

Cells (one step):
  rnn_cell   h_t = f(x_t W_xh + h_{t-1} W_hh + b_h)
             params W_xh (D,H), W_hh (H,H), b_h (H,)
  lstm_cell  [i f g o] = x_t W_x + h_{t-1} W_h + b, blocks in the order i, f, g (= c~), o
             i, f, o = sigmoid(.), g = tanh(.)
             c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
             params W_x (D,4H), W_h (H,4H), b (4H,)
  gru_cell   Cho et al. 2014, gate blocks in the order r, z, n:
             r = sigmoid(x W_xr + b_xr + h W_hr + b_hr)
             z = sigmoid(x W_xz + b_xz + h W_hz + b_hz)
             n = tanh(x W_xn + b_xn + (r * h) W_hn + b_hn)       (reset_after=False, the paper)
             n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))       (reset_after=True, cuDNN/PyTorch/Flax)
             h_t = (1 - z) * n + z * h_{t-1}
             params W_x (D,3H), W_h (H,3H), b_x (3H,), b_h (3H,)

Sequences: `rnn`, `lstm` and `gru` take batch-major x (B,T,D) and return hs (B,T,H) and the final
state. For `rnn`, `gru` and `lstm_scan` the input projection x W + b is one matrix product over all
steps, outside the scan; only the recurrent product runs inside `jax.lax.scan`. `lstm` runs the
layer of `lstm_vjp` (a custom VJP; faster to train on CPU). With `lengths` (B,), steps t >= length leave the state
unchanged and give zero outputs, so the final state is the state after each sequence's last valid
step; `reverse=True` runs each sequence backwards over its own valid steps (for bidirectional layers).
Lengths are clipped to [0, T] in both directions: a length above T means the whole sequence.
"""
from typing import Callable, Optional, Tuple, Union

import jax
import jax.numpy as jnp

from attnlab.ops import lstm_vjp, rnn_vjp

Array = jax.Array
Params = dict

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
    "gelu": jax.nn.gelu,
    "hard_tanh": lambda x: jnp.clip(x, -1.0, 1.0),
}


def get_activation(activation: Union[str, Callable]) -> Callable:
  """Returns the activation function named `activation` (or `activation` itself if callable)."""
  if callable(activation):
    return activation
  if activation not in ACTIVATIONS:
    raise ValueError(
        f"unknown activation {activation!r}; valid choices: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[activation]


# ------------------------------------------------------------------------------------------ cells


def rnn_cell(params: Params, h: Array, x: Array, activation="tanh") -> Array:
  """Elman RNN step. h (B,H), x (B,D) -> h (B,H)."""
  f = get_activation(activation)
  return f(x @ params["W_xh"] + h @ params["W_hh"] + params["b_h"])


def _lstm_gates(z: Array, c: Array) -> Tuple[Array, Array]:
  """Pre-activations z (B,4H) in the order i, f, g, o and cell c (B,H) -> (h, c)."""
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return h, c


def lstm_cell(params: Params, carry: Tuple[Array, Array], x: Array) -> Tuple[Array, Array]:
  """LSTM step with forget gate. carry (h, c) each (B,H), x (B,D) -> (h, c)."""
  h, c = carry
  return _lstm_gates(x @ params["W_x"] + h @ params["W_h"] + params["b"], c)


def _gru_update(params: Params, h: Array, xw: Array, reset_after: bool) -> Array:
  """GRU step given the input projection xw = x W_x + b_x (B,3H)."""
  hidden = h.shape[-1]
  xr, xz, xn = jnp.split(xw, 3, axis=-1)
  if reset_after:
    hw = h @ params["W_h"] + params["b_h"]
    hr, hz, hn = jnp.split(hw, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
  else:
    w_rz, w_n = params["W_h"][:, :2 * hidden], params["W_h"][:, 2 * hidden:]
    b_rz, b_n = params["b_h"][:2 * hidden], params["b_h"][2 * hidden:]
    hr, hz = jnp.split(h @ w_rz + b_rz, 2, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + (r * h) @ w_n + b_n)
  return (1.0 - z) * n + z * h


def gru_cell(params: Params, h: Array, x: Array, reset_after: bool = False) -> Array:
  """GRU step (Cho et al. 2014). h (B,H), x (B,D) -> h (B,H)."""
  return _gru_update(params, h, x @ params["W_x"] + params["b_x"], reset_after)


# -------------------------------------------------------------------------------------- sequences


def reverse_padded(x: Array, lengths: Optional[Array]) -> Array:
  """Reverses each sequence of x (B,T,...) within its first lengths[b] steps; padding stays put.

  lengths (B,) are clipped to [0, T], as the forward direction's `t < length` mask does implicitly.
  """
  if lengths is None:
    return jnp.flip(x, axis=1)
  t = jnp.arange(x.shape[1])[None, :]
  lengths = jnp.clip(jnp.asarray(lengths), 0, x.shape[1])[:, None]
  idx = jnp.where(t < lengths, lengths - 1 - t, t)  # (B,T)
  return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _check_sequence(x: Array, d_in: int, name: str):
  if x.ndim != 3:
    raise ValueError(f"{name}: x must be (B,T,D), got shape {x.shape}")
  if x.shape[-1] != d_in:
    raise ValueError(f"{name}: x has {x.shape[-1]} features but the input weights expect {d_in}")


def _scan_over_time(step, carry0, xw: Array, lengths, reverse: bool, unroll: int):
  """Runs step(carry, xw_t) -> (carry, h_t) over the time axis of xw (B,T,K).

  Returns hs (B,T,H) and the final carry, honouring `lengths` and `reverse` as the module docstring
  describes.
  """
  if reverse:
    xw = reverse_padded(xw, lengths)
  xs = jnp.swapaxes(xw, 0, 1)  # (T,B,K): scan runs over the leading axis
  if lengths is None:
    carry, hs = jax.lax.scan(step, carry0, xs, unroll=unroll)
  else:
    valid = jnp.arange(xw.shape[1])[:, None] < jnp.asarray(lengths)[None, :]  # (T,B)

    def masked_step(carry, inp):
      x_t, valid_t = inp
      new_carry, h = step(carry, x_t)
      keep = lambda a: valid_t.reshape(valid_t.shape + (1,) * (a.ndim - 1))  # (B,1,...)
      new_carry = jax.tree.map(lambda n, o: jnp.where(keep(n), n, o), new_carry, carry)
      return new_carry, jnp.where(keep(h), h, jnp.zeros_like(h))

    carry, hs = jax.lax.scan(masked_step, carry0, (xs, valid), unroll=unroll)
  hs = jnp.swapaxes(hs, 0, 1)
  if reverse:
    hs = reverse_padded(hs, lengths)
  return hs, carry


def _valid_steps(lengths, length: int) -> Array:
  """(B,T) bool, True at the first lengths[b] steps."""
  return jnp.arange(length)[None, :] < jnp.asarray(lengths)[:, None]


def _zeros_state(x: Array, hidden: int, dtype) -> Array:
  return jnp.zeros((x.shape[0], hidden), dtype)


def rnn(params: Params, x: Array, h0: Optional[Array] = None, *, lengths=None,
        reverse: bool = False, activation="tanh", unroll: int = 1) -> Tuple[Array, Array]:
  """Elman RNN over a sequence. x (B,T,D), h0 (B,H) -> (hs (B,T,H), h_T (B,H)).

  With tanh, runs `rnn_vjp.rnn_layer` (a hand-written backward pass; reverse mode only; `unroll`
  unused); other activations, and `rnn_scan`, are the plain `lax.scan`.
  """
  if activation != "tanh" or x.ndim != 3 or x.shape[1] == 0:
    return rnn_scan(params, x, h0, lengths=lengths, reverse=reverse, activation=activation,
                    unroll=unroll)
  _check_sequence(x, params["W_xh"].shape[0], "rnn")
  xw = x @ params["W_xh"] + params["b_h"]
  h0 = _zeros_state(x, params["W_hh"].shape[0], xw.dtype) if h0 is None else h0
  return _custom_layer(lambda xw_, valid: rnn_vjp.rnn_layer(params["W_hh"], xw_, h0, valid),
                       xw, lengths, reverse)


def rnn_scan(params: Params, x: Array, h0: Optional[Array] = None, *, lengths=None,
             reverse: bool = False, activation="tanh", unroll: int = 1) -> Tuple[Array, Array]:
  """`rnn` as a plain `lax.scan` differentiated by JAX (forward mode works too)."""
  _check_sequence(x, params["W_xh"].shape[0], "rnn")
  f = get_activation(activation)
  w_hh = params["W_hh"]
  xw = x @ params["W_xh"] + params["b_h"]
  h0 = _zeros_state(x, w_hh.shape[0], xw.dtype) if h0 is None else h0

  def step(h, xw_t):
    h = f(xw_t + h @ w_hh)
    return h, h

  return _scan_over_time(step, h0, xw, lengths, reverse, unroll)


def _custom_layer(layer, xw: Array, lengths, reverse: bool):
  """Runs layer(xw (B,T,K), valid (B,T) or None) -> (hs, final) with `lengths` and `reverse`: the
  layers with hand-written backward passes take the valid steps as a prefix of each sequence."""
  if reverse:
    xw = reverse_padded(xw, lengths)
  valid = None if lengths is None else _valid_steps(lengths, xw.shape[1])
  hs, final = layer(xw, valid)
  return (reverse_padded(hs, lengths) if reverse else hs), final


def lstm(params: Params, x: Array, carry0: Optional[Tuple[Array, Array]] = None, *, lengths=None,
         reverse: bool = False, unroll: int = 1) -> Tuple[Array, Tuple[Array, Array]]:
  """LSTM over a sequence. x (B,T,D), carry0 (h0, c0) -> (hs (B,T,H), (h_T, c_T)).

  Runs `lstm_vjp.lstm_layer`: one fused [x_t, h] product per step, and a hand-written backward pass
  that stores only the gates and cells (reverse-mode differentiation only; the equations are those
  of `lstm_cell`; `lstm_scan` is the plain `lax.scan` version, differentiable in both modes).
  """
  _check_sequence(x, params["W_x"].shape[0], "lstm")
  if x.shape[1] == 0:
    return lstm_scan(params, x, carry0, lengths=lengths, reverse=reverse, unroll=unroll)
  w_h = params["W_h"]
  dtype = jnp.result_type(x, params["W_x"], params["b"])
  if carry0 is None:
    zeros = _zeros_state(x, w_h.shape[0], dtype)
    carry0 = (zeros, zeros)
  return _custom_layer(lambda x_, valid: lstm_vjp.lstm_layer(params["W_x"], w_h, params["b"], x_,
                                                             carry0[0], carry0[1], valid, unroll),
                       x, lengths, reverse)


def lstm_scan(params: Params, x: Array, carry0: Optional[Tuple[Array, Array]] = None, *,
              lengths=None, reverse: bool = False, unroll: int = 1) -> Tuple[Array, Tuple[Array, Array]]:
  """`lstm` as a plain `lax.scan` differentiated by JAX (forward mode works too)."""
  _check_sequence(x, params["W_x"].shape[0], "lstm")
  w_h = params["W_h"]
  xw = x @ params["W_x"] + params["b"]
  if carry0 is None:
    zeros = _zeros_state(x, w_h.shape[0], xw.dtype)
    carry0 = (zeros, zeros)

  def step(carry, xw_t):
    h, c = _lstm_gates(xw_t + carry[0] @ w_h, carry[1])
    return (h, c), h

  return _scan_over_time(step, carry0, xw, lengths, reverse, unroll)


def gru(params: Params, x: Array, h0: Optional[Array] = None, *, lengths=None,
        reverse: bool = False, reset_after: bool = False, unroll: int = 1) -> Tuple[Array, Array]:
  """GRU over a sequence. x (B,T,D), h0 (B,H) -> (hs (B,T,H), h_T (B,H)).

  Runs `rnn_vjp.gru_layer` (a hand-written backward pass; reverse mode only; `unroll` unused);
  `gru_scan` is the plain `lax.scan` version with the equations of `gru_cell`.
  """
  if x.ndim != 3 or x.shape[1] == 0:
    return gru_scan(params, x, h0, lengths=lengths, reverse=reverse, reset_after=reset_after,
                    unroll=unroll)
  _check_sequence(x, params["W_x"].shape[0], "gru")
  xw = x @ params["W_x"] + params["b_x"]
  h0 = _zeros_state(x, params["W_h"].shape[0], xw.dtype) if h0 is None else h0
  return _custom_layer(
      lambda xw_, valid: rnn_vjp.gru_layer(params["W_h"], params["b_h"], xw_, h0, valid, reset_after),
      xw, lengths, reverse)


def gru_scan(params: Params, x: Array, h0: Optional[Array] = None, *, lengths=None,
             reverse: bool = False, reset_after: bool = False, unroll: int = 1) -> Tuple[Array, Array]:
  """`gru` as a plain `lax.scan` differentiated by JAX (forward mode works too)."""
  _check_sequence(x, params["W_x"].shape[0], "gru")
  xw = x @ params["W_x"] + params["b_x"]
  h0 = _zeros_state(x, params["W_h"].shape[0], xw.dtype) if h0 is None else h0

  def step(h, xw_t):
    h = _gru_update(params, h, xw_t, reset_after)
    return h, h

  return _scan_over_time(step, h0, xw, lengths, reverse, unroll)
