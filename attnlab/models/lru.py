"""Linear Recurrent Unit (Orvieto et al. 2023): a complex diagonal linear recurrence that need not vanish.

  x_t = lambda * x_{t-1} + gamma * (B u_t),   y_t = Re(C x_t) + D * u_t
  lambda = exp(-exp(nu_log) + i exp(theta_log))     (stable: |lambda| < 1 for any nu_log)

Initialisation (state size N, model size H):
  |lambda| uniform on the ring r_min <= |lambda| <= r_max (uniform in area), phase U(0, max_phase);
  gamma = sqrt(1 - |lambda|^2) (normalises the state's variance for white-noise input);
  B: real and imaginary parts N(0, 1/(2H));  C: real and imaginary parts N(0, 1/N);  D: N(0, 1).
The recurrence runs with `ops.linear_recurrence` (associative scan, O(log T) depth), in complex64,
or complex128 for float64 inputs and parameters (under `jax.enable_x64`, as the gradient analysis).

Blocks follow the paper (and its reference code, NicolasZucchet/minimal-LRU): pre-norm, LRU, GELU,
GLU, residual; `norm` 'layer' (LayerNorm) or 'batch' (BatchNorm over batch and valid time steps, as
in the paper: its running averages live in the `batch_stats` collection, updated when train=True);
dropout masks shared across time steps (minimal-LRU's broadcast_dims).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import ops
from attnlab.models.heads import last_valid

NORMS = ("layer", "batch")


def _ring_nu_log(r_min: float, r_max: float):

  def init(key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, dtype)
    return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))

  return init


def _phase_log(max_phase: float):

  def init(key, shape, dtype=jnp.float32):
    return jnp.log(max_phase * jax.random.uniform(key, shape, dtype))

  return init


def _scaled_normal(std: float):

  def init(key, shape, dtype=jnp.float32):
    return std * jax.random.normal(key, shape, dtype)

  return init


class LRU(nn.Module):
  """One LRU layer. u (B,T,H) -> y (B,T,H). `scan`: how the recurrence runs (ops.linear_recurrence)."""
  state_size: int = 128
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 2 * math.pi
  scan: str = "auto"

  @nn.compact
  def __call__(self, u):
    n, h = self.state_size, u.shape[-1]
    nu_log = self.param("nu_log", _ring_nu_log(self.r_min, self.r_max), (n,))
    theta_log = self.param("theta_log", _phase_log(self.max_phase), (n,))
    gamma_log = self.param(
        "gamma_log", lambda key, shape: jnp.log(jnp.sqrt(1 - jnp.exp(-2 * jnp.exp(nu_log)))), (n,))
    b_re = self.param("B_re", _scaled_normal(1 / math.sqrt(2 * h)), (n, h))
    b_im = self.param("B_im", _scaled_normal(1 / math.sqrt(2 * h)), (n, h))
    c_re = self.param("C_re", _scaled_normal(1 / math.sqrt(n)), (h, n))
    c_im = self.param("C_im", _scaled_normal(1 / math.sqrt(n)), (h, n))
    d = self.param("D", _scaled_normal(1.0), (h,))

    lam = jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(theta_log))  # (N,)
    b = (b_re + 1j * b_im) * jnp.exp(gamma_log)[:, None]  # (N,H)
    complex_dtype = jnp.promote_types(u.dtype, jnp.complex64)  # complex128 for float64 inputs
    bu = jnp.einsum("bth,nh->btn", u.astype(complex_dtype), b)
    x = ops.linear_recurrence(lam, bu, method=self.scan)  # (B,T,N)
    y = jnp.einsum("btn,hn->bth", x, c_re + 1j * c_im).real
    return (y + d * u).astype(u.dtype)


def normalize(kind: str, x, valid, train: bool, name=None):
  """LayerNorm, or BatchNorm over the valid (B,T) positions (running averages in eval)."""
  if kind == "layer":
    return nn.LayerNorm(name=name)(x)
  if kind == "batch":
    mask = None if valid is None else valid[:, :, None]
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)(x, mask=mask)
  raise ValueError(f"model.norm={kind!r}; valid choices: {list(NORMS)}")


class LRUBlock(nn.Module):
  """Pre-norm residual block of the LRU paper: u + Drop(GLU(Drop(GELU(LRU(Norm(u))))))."""
  state_size: int = 128
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 2 * math.pi
  dropout_rate: float = 0.0
  norm: str = "layer"
  scan: str = "auto"

  @nn.compact
  def __call__(self, u, valid=None, *, train: bool = False):
    """u (B,T,H), valid (B,T) bool or None -> (B,T,H)."""
    drop = lambda y: nn.Dropout(self.dropout_rate, broadcast_dims=(1,), deterministic=not train)(y)
    y = normalize(self.norm, u, valid, train)
    y = LRU(self.state_size, self.r_min, self.r_max, self.max_phase, self.scan)(y)
    y = drop(nn.gelu(y))
    y = nn.Dense(u.shape[-1])(y) * jax.nn.sigmoid(nn.Dense(u.shape[-1])(y))  # GLU
    return u + drop(y)


class LRUStack(nn.Module):
  """Input projection to `d_model`, then `num_layers` LRU blocks.

  x (B,T,D), lengths -> (hs (B,T,d_model), summary (B,d_model) = hs at each sequence's last step).
  The recurrence is causal, so padding after a sequence never changes its valid outputs.
  """
  d_model: int = 128
  state_size: int = 128
  num_layers: int = 1
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 2 * math.pi
  dropout_rate: float = 0.0
  norm: str = "layer"
  scan: str = "auto"

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    x = nn.Dense(self.d_model, name="input_proj")(x)
    valid = None
    if lengths is not None:
      valid = jnp.arange(x.shape[1])[None, :] < jnp.asarray(lengths)[:, None]
    for i in range(self.num_layers):
      x = LRUBlock(self.state_size, self.r_min, self.r_max, self.max_phase, self.dropout_rate,
                   self.norm, self.scan, name=f"block_{i}")(x, valid, train=train)
    x = normalize(self.norm, x, valid, train, "final_norm")
    return x, last_valid(x, lengths)

