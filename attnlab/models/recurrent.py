"""Recurrent sequence layers (RNN, LSTM, GRU): Linen shells that own parameters and call `attnlab.ops`.

Initialisation (per layer and direction; D input, H hidden):
  W_xh / W_x   LeCun normal, variance 1/D.
  W_xh / W_x   with `input_std` set: N(0, input_std^2) instead (the IRNN's 0.001, Le et al. 2015).
  W_hh / W_h   `recurrent_init` 'orthogonal': one orthogonal (H,H) block per gate; 'identity': one
               identity block per gate (the IRNN of Le et al. 2015: with ReLU and zero bias, the
               state is carried unchanged until the inputs move it). The RNN's is scaled by
               `recurrent_scale`, which is then exactly its spectral radius (to study vanishing vs
               exploding gradients).
  biases       zero, except the LSTM forget-gate block: `forget_bias` (1.0, Gers et al. 2000), or with
               `chrono_max = T_max` the chrono init of Tallec & Ollivier 2018: b_f ~ log U(1, T_max - 1),
               b_i = -b_f;
               and the GRU update-gate block of b_x (gate z of h = (1 - z) * n + z * h_prev, so z near 1
               carries the state): `carry_bias` (0.0 = no carry), or with `chrono_max = T_max` the same
               chrono init b_z ~ log U(1, T_max - 1): z plays the LSTM forget gate's role (and 1 - z its
               input gate's), so the state's initial forgetting times 1 / (1 - z) spread over [2, T_max].
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import ops

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
RECURRENT_INITS = ("orthogonal", "identity")


def blockwise_orthogonal(num_blocks: int, scale: float = 1.0):
  """Init for (H, num_blocks*H): `num_blocks` independent orthogonal (H,H) blocks, times `scale`."""

  def init(key, shape, dtype=jnp.float32):
    hidden = shape[0]
    keys = jax.random.split(key, num_blocks)
    blocks = [nn.initializers.orthogonal(scale)(k, (hidden, hidden), dtype) for k in keys]
    return jnp.concatenate(blocks, axis=1)

  return init


def blockwise_identity(num_blocks: int, scale: float = 1.0):
  """Init for (H, num_blocks*H): `num_blocks` identity (H,H) blocks, times `scale`."""

  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.tile(scale * jnp.eye(shape[0], dtype=dtype), (1, num_blocks))

  return init


def recurrent_kernel(init: str, num_blocks: int, scale: float = 1.0):
  """The W_hh / W_h init named `init` (one of RECURRENT_INITS)."""
  if init not in RECURRENT_INITS:
    raise ValueError(f"unknown recurrent_init {init!r}; valid choices: {list(RECURRENT_INITS)}")
  make = blockwise_identity if init == "identity" else blockwise_orthogonal
  return make(num_blocks, scale)


def chrono_bias(key, hidden: int, chrono_max: int, dtype=jnp.float32):
  """log U(1, T_max - 1) (H,): the chrono gate bias of Tallec & Ollivier 2018."""
  if chrono_max <= 2:
    raise ValueError(f"chrono_max must be > 2 (the longest dependency length), got {chrono_max}")
  return jnp.log(jax.random.uniform(key, (hidden,), dtype, 1.0, chrono_max - 1.0))


def lstm_bias(forget_bias: float = 1.0, chrono_max: Optional[int] = None):
  """Init for the fused LSTM bias (4H,) in gate order i, f, g, o."""

  def init(key, shape, dtype=jnp.float32):
    hidden = shape[0] // 4
    b = jnp.zeros((4, hidden), dtype)
    if chrono_max is not None:
      b_f = chrono_bias(key, hidden, chrono_max, dtype)
      b = b.at[1].set(b_f).at[0].set(-b_f)
    else:
      b = b.at[1].set(forget_bias)
    return b.reshape(-1)

  return init


def gru_input_bias(carry_bias: float = 0.0, chrono_max: Optional[int] = None):
  """Init for the GRU input bias b_x (3H,) in gate order r, z, n: the update gate z carries."""

  def init(key, shape, dtype=jnp.float32):
    hidden = shape[0] // 3
    b = jnp.zeros((3, hidden), dtype)
    b_z = chrono_bias(key, hidden, chrono_max, dtype) if chrono_max is not None else carry_bias
    return b.at[1].set(b_z).reshape(-1)

  return init


class CellParameters(nn.Module):
  """The parameters of one cell in the layout `ops` expects; calling it returns them as a dict."""
  cell: str
  in_dim: int
  hidden_size: int
  recurrent_scale: float = 1.0
  forget_bias: float = 1.0
  chrono_max: Optional[int] = None
  carry_bias: float = 0.0
  recurrent_init: str = "orthogonal"
  input_std: Optional[float] = None  # None: LeCun normal

  def setup(self):
    if self.cell not in CELLS:
      raise ValueError(f"unknown cell {self.cell!r}; valid choices: {list(CELLS)}")
    d, h, g = self.in_dim, self.hidden_size, GATES[self.cell]
    lecun = (nn.initializers.lecun_normal() if self.input_std is None
             else nn.initializers.normal(self.input_std))
    if self.cell == "rnn":
      self.weights = {
          "W_xh": self.param("W_xh", lecun, (d, h)),
          "W_hh": self.param("W_hh", recurrent_kernel(self.recurrent_init, 1, self.recurrent_scale),
                             (h, h)),
          "b_h": self.param("b_h", nn.initializers.zeros, (h,)),
      }
    elif self.cell == "lstm":
      self.weights = {
          "W_x": self.param("W_x", lecun, (d, g * h)),
          "W_h": self.param("W_h", recurrent_kernel(self.recurrent_init, g), (h, g * h)),
          "b": self.param("b", lstm_bias(self.forget_bias, self.chrono_max), (g * h,)),
      }
    else:
      self.weights = {
          "W_x": self.param("W_x", lecun, (d, g * h)),
          "W_h": self.param("W_h", recurrent_kernel(self.recurrent_init, g), (h, g * h)),
          "b_x": self.param("b_x", gru_input_bias(self.carry_bias, self.chrono_max), (g * h,)),
          "b_h": self.param("b_h", nn.initializers.zeros, (g * h,)),
      }

  def __call__(self) -> dict:
    return dict(self.weights)


def final_hidden(carry):
  """The hidden vector h of a cell state: h itself, or the h of an LSTM's (h, c)."""
  return carry[0] if isinstance(carry, tuple) else carry


class RecurrentLayer(nn.Module):
  """One direction of one recurrent layer. x (B,T,D) -> (hs (B,T,H), final state)."""
  cell: str
  hidden_size: int
  activation: str = "tanh"  # rnn only
  reset_after: bool = False  # gru only
  recurrent_scale: float = 1.0
  forget_bias: float = 1.0
  chrono_max: Optional[int] = None
  carry_bias: float = 0.0
  reverse: bool = False
  unroll: int = 1
  recurrent_init: str = "orthogonal"
  input_std: Optional[float] = None

  @nn.compact
  def __call__(self, x, lengths=None, initial_state=None):
    params = CellParameters(self.cell, x.shape[-1], self.hidden_size, self.recurrent_scale,
                            self.forget_bias, self.chrono_max, self.carry_bias,
                            self.recurrent_init, self.input_std, name="cell")()
    kw = dict(lengths=lengths, reverse=self.reverse, unroll=self.unroll)
    if self.cell == "rnn":
      return ops.rnn(params, x, initial_state, activation=self.activation, **kw)
    if self.cell == "lstm":
      return ops.lstm(params, x, initial_state, **kw)
    return ops.gru(params, x, initial_state, reset_after=self.reset_after, **kw)


class RecurrentStack(nn.Module):
  """Stacked, optionally bidirectional recurrent layers with dropout between layers.

  x (B,T,D), lengths (B,) or None -> (hs (B,T,F), summary (B,F)) with F = H (or 2H bidirectional):
  hs are the last layer's outputs (zero at padded steps), summary its final hidden state (forward
  state after each sequence's last valid step, concatenated with the backward state at step 0).
  """
  cell: str = "lstm"
  hidden_size: int = 128
  num_layers: int = 1
  bidirectional: bool = False
  dropout_rate: float = 0.0
  activation: str = "tanh"
  reset_after: bool = False
  recurrent_scale: float = 1.0
  forget_bias: float = 1.0
  chrono_max: Optional[int] = None
  unroll: int = 1
  carry_bias: float = 0.0
  recurrent_init: str = "orthogonal"
  input_std: Optional[float] = None

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    layer_kw = dict(cell=self.cell, hidden_size=self.hidden_size, activation=self.activation,
                    reset_after=self.reset_after, recurrent_scale=self.recurrent_scale,
                    forget_bias=self.forget_bias, chrono_max=self.chrono_max,
                    carry_bias=self.carry_bias, unroll=self.unroll,
                    recurrent_init=self.recurrent_init, input_std=self.input_std)
    summary = None
    for i in range(self.num_layers):
      if i > 0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      hs, carry = RecurrentLayer(**layer_kw, name=f"layer_{i}_fwd")(x, lengths)
      summary = final_hidden(carry)
      if self.bidirectional:
        hs_b, carry_b = RecurrentLayer(**layer_kw, reverse=True, name=f"layer_{i}_bwd")(x, lengths)
        hs = jnp.concatenate([hs, hs_b], axis=-1)
        summary = jnp.concatenate([summary, final_hidden(carry_b)], axis=-1)
      x = hs
    return x, summary


class RNN(RecurrentStack):
  """Elman RNN layers (tanh by default; `activation` selects relu, identity, ...; the IRNN of Le et
  al. 2015 is activation='relu', recurrent_init='identity', input_std=1e-3)."""
  cell: str = "rnn"


class LSTM(RecurrentStack):
  """LSTM layers with forget gate (gate order i, f, g, o; forget bias 1.0)."""
  cell: str = "lstm"


class GRU(RecurrentStack):
  """GRU layers (Cho et al. 2014; `reset_after=True` gives the cuDNN/PyTorch variant)."""
  cell: str = "gru"
