"""Mamba (Gu & Dao 2023): residual blocks around a selective state space (S6, `ops.selective_scan`).

One block (the reference code's mamba_simple.Mamba inside its pre-norm Block), d = d_model,
E = expand * d, N = d_state, R = dt_rank (ceil(d / 16) by default):
  x, z   = split(in_proj(RMSNorm(u)))                      in_proj d -> 2E, no bias
  x      = SiLU(causal_conv1d(x))                           depthwise, width conv_width (4), bias
  dt, B, C = split(x_proj(x))                               x_proj E -> R + 2N, no bias
  Delta  = softplus(dt_proj(dt))                            dt_proj R -> E, with bias
  y      = S6(x, Delta, A = -exp(A_log), B, C, D) * SiLU(z)
  u      = u + Drop(out_proj(y))                            out_proj E -> d, no bias
selective=False: the time-invariant ablation (S4D-style LTI, Mamba's Table 1 "S4" rows): dt, B and C
are learned parameters, dt_bias (E,), B (N,) and C (N,), broadcast over batch and time, so no step's
Delta, B or C depends on the input and the scan is a convolution with one fixed kernel per channel,
K_k[e] = sum_n C_n exp(k Delta_e A[e,n]) Delta_e B_n (x_proj and dt_proj are not built). B and C are
shared across channels as S6's are (S4D has one per channel); the SiLU(z) gate is kept.
Initialisation as in the reference: A_log[e, n] = log(n + 1) (S4D-real), D = 1, dt_proj's bias the
inverse softplus of dt ~ log U(dt_min, dt_max) (floored at 1e-4), its kernel U(+-R^-1/2).
`scan` picks the S6 form (`ops.selective_scan`): 'auto' (the default; by backend: 'blocked' on CPU,
'parallel' elsewhere), 'blocked' (no (B,T,E,N) array; on a 2-core CPU the S6's forward + backward at
T=144 1.0-1.5x faster than 'sequential' across runs and machines, BENCHMARKS.md), 'sequential' (~4x faster
than 'parallel' on that CPU at B=64, T=100, E=128, N=16, since the associative scan writes every
(B,T,E,N) state several times) or 'parallel' (the associative scan of `linear_recurrence`, O(log T)
depth for accelerators, run as such on every backend, CPU included).
Everything is causal, so padding after a sequence never changes its valid outputs.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import ops
from attnlab.models.heads import last_valid


def _dt_bias(dt_min: float, dt_max: float, floor: float = 1e-4):

  def init(key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, dtype)
    dt = jnp.maximum(jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)), floor)
    return dt + jnp.log(-jnp.expm1(-dt))  # softplus^-1(dt)

  return init


def _symmetric_uniform(limit: float):

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -limit, limit)

  return init


def _s4d_real(key, shape, dtype=jnp.float32):
  """A_log (E,N) with A = -exp(A_log) = -(1, 2, ..., N) in every channel."""
  return jnp.broadcast_to(jnp.log(jnp.arange(1, shape[1] + 1, dtype=dtype)), shape)


class MambaMixer(nn.Module):
  """The S6 mixer of one block. u (B,T,d) -> (B,T,d)."""
  d_state: int = 16
  expand: int = 2
  conv_width: int = 4
  dt_rank: int = None
  dt_min: float = 0.001
  dt_max: float = 0.1
  scan: str = "auto"
  selective: bool = True

  @nn.compact
  def __call__(self, u, lengths=None):
    d = u.shape[-1]
    e, n = self.expand * d, self.d_state
    rank = self.dt_rank or math.ceil(d / 16)
    x, z = jnp.split(nn.Dense(2 * e, use_bias=False, name="in_proj")(u), 2, axis=-1)
    conv_w = self.param("conv_kernel", nn.initializers.lecun_normal(), (self.conv_width, e))
    conv_b = self.param("conv_bias", nn.initializers.zeros, (e,))
    x = nn.silu(ops.causal_conv1d(x, conv_w, conv_b))
    if self.selective:
      dt, b, c = jnp.split(nn.Dense(rank + 2 * n, use_bias=False, name="x_proj")(x),
                           [rank, rank + n], axis=-1)
      dt_proj = nn.Dense(e, name="dt_proj", kernel_init=_symmetric_uniform(rank**-0.5),
                         bias_init=_dt_bias(self.dt_min, self.dt_max))
      delta = jax.nn.softplus(dt_proj(dt))
    else:  # time-invariant: the same Delta, B, C at every step of every sequence
      steps = x.shape[:2]
      delta = jnp.broadcast_to(jax.nn.softplus(self.param(
          "dt_bias", _dt_bias(self.dt_min, self.dt_max), (e,))), steps + (e,))
      b, c = (jnp.broadcast_to(self.param(name, nn.initializers.normal(n**-0.5), (n,)), steps + (n,))
              for name in ("B", "C"))
    a_log = self.param("A_log", _s4d_real, (e, n))
    skip = self.param("D", nn.initializers.ones, (e,))
    y, _ = ops.selective_scan(x, delta, -jnp.exp(a_log), b, c, skip, lengths=lengths,
                              method=self.scan)
    return nn.Dense(d, use_bias=False, name="out_proj")(y * nn.silu(z))


class MambaStack(nn.Module):
  """Input projection to `d_model`, `num_layers` pre-norm residual Mamba blocks, a final RMSNorm.

  x (B,T,D), lengths -> (hs (B,T,d_model), summary (B,d_model) = hs at each sequence's last step).
  """
  d_model: int = 128
  d_state: int = 16
  num_layers: int = 2
  expand: int = 2
  conv_width: int = 4
  dt_rank: int = None
  dt_min: float = 0.001
  dt_max: float = 0.1
  scan: str = "auto"
  dropout_rate: float = 0.0
  selective: bool = True

  @nn.compact
  def __call__(self, x, lengths=None, *, train: bool = False):
    drop = lambda y: nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    x = nn.Dense(self.d_model, name="input_proj")(x)
    for i in range(self.num_layers):
      mixer = MambaMixer(self.d_state, self.expand, self.conv_width, self.dt_rank, self.dt_min,
                         self.dt_max, self.scan, self.selective, name=f"block_{i}")
      x = x + drop(mixer(nn.RMSNorm(name=f"norm_{i}")(x), lengths))
    x = nn.RMSNorm(name="final_norm")(x)
    return x, last_valid(x, lengths)
