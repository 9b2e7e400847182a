"""Layer normalisation over the last axis with a hand-written backward pass (issue 30).

  y = (x - mean(x)) / sqrt(var(x) + eps) * scale + bias          (Ba et al. 2016)

The forward pass centres x before squaring (two passes over a row, no cancellation in
E[x^2] - E[x]^2) and keeps x_hat = (x - mean) / std and 1 / std for the backward pass:

  g' = g * scale,  dx = (g' - mean(g') - x_hat * mean(g' x_hat)) / std,
  dscale = sum over rows of g * x_hat,  dbias = sum over rows of g.

Autodiff of the same formula differentiates the mean and the variance separately (more passes
and broadcasts of (B,T,1) statistics). Statistics are float32 (float64 for float64 inputs).
Shapes: x (..., F), scale and bias (F,) -> (..., F).
"""
import jax
import jax.numpy as jnp


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = 1e-6) -> jax.Array:
  """x (..., F) normalised over F, times scale (F,) plus bias (F,)."""
  return _layer_norm(x, scale, bias, eps)


def _stats(x, eps):
  """(x_hat, 1 / std (...,1)). The row means are products with a (F,1) column of 1/F: on XLA's CPU
  backend a little cheaper in the whole step than reductions over the last axis (issue 30); at
HIGHEST precision, so accelerators do not round the inputs to TF32 or bfloat16."""
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  average = jnp.full((xf.shape[-1], 1), 1.0 / xf.shape[-1], xf.dtype)
  mean = lambda y: jnp.matmul(y, average, precision=jax.lax.Precision.HIGHEST)  # no TF32 / bf16
  centred = xf - mean(xf)
  inv_std = jax.lax.rsqrt(mean(centred * centred) + eps)
  return centred * inv_std, inv_std


def _ln_fwd(x, scale, bias, eps):
  x_hat, inv_std = _stats(x, eps)
  return (x_hat * scale + bias).astype(x.dtype), (x_hat, inv_std, scale)


def _ln_bwd(eps, residuals, g):
  x_hat, inv_std, scale = residuals
  gf = g.astype(x_hat.dtype)
  gs = gf * scale
  dx = inv_std * (gs - gs.mean(axis=-1, keepdims=True)
                  - x_hat * (gs * x_hat).mean(axis=-1, keepdims=True))
  rows = tuple(range(g.ndim - 1))
  return (dx.astype(g.dtype), (gf * x_hat).sum(rows).astype(scale.dtype),
          gf.sum(rows).astype(scale.dtype))


_layer_norm = jax.custom_vjp(lambda x, scale, bias, eps: _ln_fwd(x, scale, bias, eps)[0],
                             nondiff_argnums=(3,))
_layer_norm.defvjp(_ln_fwd, _ln_bwd)
