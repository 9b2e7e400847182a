"""Mamba's time-invariant ablation (model.selective=False, Gu & Dao 2023 Table 1's S4 rows): with no
input-dependent Delta, B or C the S6 scan must be a convolution with one fixed kernel per channel,
checked in float64 against that convolution written out in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import models
from attnlab.models.mamba import MambaMixer

B, T, D, N = 2, 11, 4, 3


def _silu(x):
  return x / (1 + np.exp(-x))


def lti_reference(p, u):
  """The mixer with a fixed kernel K_k[e] = sum_n C_n exp(k Delta_e A[e,n]) Delta_e B_n."""
  x, z = np.split(u @ p["in_proj"]["kernel"], 2, axis=-1)
  w = p["conv_kernel"]
  width = w.shape[0]
  padded = np.pad(x, ((0, 0), (width - 1, 0), (0, 0)))
  x = _silu(sum(padded[:, j:j + T] * w[j] for j in range(width)) + p["conv_bias"])
  delta = np.log1p(np.exp(p["dt_bias"]))  # (E,)
  a = -np.exp(p["A_log"])  # (E,N)
  k = np.arange(T)[:, None, None]
  kernel = np.einsum("n,ken->ke", p["C"], np.exp(k * delta[:, None] * a) * delta[:, None] * p["B"])
  y = np.zeros_like(x)
  for t in range(T):
    for s in range(t + 1):
      y[:, t] += kernel[t - s] * x[:, s]
  y = y + p["D"] * x
  return (y * _silu(z)) @ p["out_proj"]["kernel"]


@pytest.mark.parametrize("scan", ["sequential", "blocked"])
def test_lti_mixer_is_a_convolution_with_a_fixed_kernel(scan):
  with jax.enable_x64(True):
    u = jax.random.normal(jax.random.PRNGKey(0), (B, T, D), jnp.float64)
    mixer = MambaMixer(d_state=N, expand=2, scan=scan, selective=False)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                          mixer.init(jax.random.PRNGKey(1), u)["params"])
    # no input-dependent projections are built; B and C are random so the kernel is not trivial
    assert {"x_proj", "dt_proj"}.isdisjoint(params) and params["B"].shape == (N,)
    params = dict(params, C=jax.random.normal(jax.random.PRNGKey(2), (N,), jnp.float64))
    out = mixer.apply({"params": params}, u)
    assert out.dtype == jnp.float64
    ref = lti_reference(jax.tree.map(np.asarray, params), np.asarray(u))
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-10, atol=1e-12)


def test_selective_field_is_checked_and_reaches_the_model():
  config = models.default_config("mamba")
  config.update(d_model=8, num_layers=1, vocab_size=5, embed_dim=8, num_outputs=2, selective=False)
  init = lambda: models.build(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))
  names = jax.tree_util.tree_flatten_with_path(jax.eval_shape(init)["params"])[0]  # names only
  paths = ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in names]
  assert any(p.endswith("dt_bias") for p in paths) and not any("x_proj" in p for p in paths)
  with pytest.raises(ValueError, match="model.selective='no'"):
    models.build(dict(config.to_dict(), selective="no"))
