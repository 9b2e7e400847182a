"""Whole modules against their equations written out in float64 NumPy (`tests.reference`), applied
with the module's own (randomised) parameters: a wrong wire (a gate fed the wrong branch, a skipped
norm or bias) changes the output, which shape and smoke tests would not notice."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.models.mamba import MambaStack
from tests import reference as ref
from tests.marks import fast_only

B, T, D_IN, D_MODEL, N = 2, 9, 3, 8, 4


def randomised(params, seed):
  """Every parameter in float64, moved by noise: no zero bias, unit skip or unit norm scale hides
  a wire."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [jnp.asarray(a, jnp.float64) + 0.3 * jax.random.normal(
      k, a.shape, jnp.float64) for a, k in zip(leaves, keys)])


@pytest.mark.parametrize("scan", fast_only(["auto", "parallel"], keep=("parallel",)))
def test_mamba_stack_matches_its_equations(scan):
  lengths = np.array([T, 6])
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.PRNGKey(0), (B, T, D_IN), jnp.float64)
    model = MambaStack(d_model=D_MODEL, d_state=N, num_layers=2, expand=2, conv_width=3, scan=scan)
    params = randomised(jax.jit(model.init)(jax.random.PRNGKey(1), x, lengths)["params"], seed=2)
    hs, summary = jax.jit(model.apply)({"params": params}, x, lengths)
    assert hs.dtype == jnp.float64
  want_hs, want_summary = ref.mamba_stack(jax.tree.map(np.asarray, params), np.asarray(x), lengths)
  valid = np.arange(T)[None, :] < lengths[:, None]  # steps past a length are padding
  np.testing.assert_allclose(np.asarray(hs)[valid], want_hs[valid], rtol=1e-9, atol=1e-10)
  np.testing.assert_allclose(summary, want_summary, rtol=1e-9, atol=1e-10)
