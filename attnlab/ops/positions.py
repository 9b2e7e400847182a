"""Position encodings: sinusoidal (Vaswani et al. 2017) and rotary (RoPE, Su et al. 2021)."""
import jax
import jax.numpy as jnp
import numpy as np


def sinusoidal_positions(length: int, dim: int, max_timescale: float = 10000.0) -> jax.Array:
  """(T,d) table with PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
  if length < 0 or dim <= 0:
    raise ValueError(f"sinusoidal_positions: need length >= 0 and dim > 0, got {length}, {dim}")
  pos = np.arange(length, dtype=np.float64)[:, None]
  two_i = np.arange(0, dim, 2, dtype=np.float64)[None, :]
  angles = pos / max_timescale ** (two_i / dim)  # (T, ceil(d/2))
  table = np.zeros((length, dim), dtype=np.float64)
  table[:, 0::2] = np.sin(angles)
  table[:, 1::2] = np.cos(angles[:, :dim // 2])
  return jnp.asarray(table, dtype=jnp.float32)


def rotary_embedding(x: jax.Array, positions=None, max_timescale: float = 10000.0) -> jax.Array:
  """Rotates feature pairs (2i, 2i+1) of x (B,T,N,d) by angle pos / 10000^(2i/d) (RoPE).

  Then q_m . k_n depends on positions only through m - n. `positions` (B,T) or (T,); default arange(T).
  """
  length, dim = x.shape[1], x.shape[-1]
  if dim % 2:
    raise ValueError(f"rotary_embedding needs an even head size, got {dim}")
  if positions is None:
    positions = jnp.arange(length)
  positions = jnp.asarray(positions, jnp.float32)
  if positions.ndim == 1:
    positions = positions[None, :]
  inv_freq = max_timescale ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)  # (d/2,)
  angles = positions[:, :, None, None] * inv_freq  # (B,T,1,d/2)
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  x1, x2 = x[..., 0::2], x[..., 1::2]
  rotated = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return rotated.reshape(x.shape).astype(x.dtype)
