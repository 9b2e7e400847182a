"""Issue 30's faster Transformer pieces keep the old parameters and compute the same function.

LayerNorm (hand-written backward), the attention projections (q, k, v as one product) and the
thin input projection: values and gradients against float64 NumPy references, initial parameters
equal to Flax's modules, and the comparison Transformer's parameter tree equal to the one the code
before these changes initialised (tests/data/transformer_params_ea8f1dd.json: path, shape, sum and
sum of squares of every leaf, written by that code), so recorded runs and checkpoints still load.
"""
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import models, sweep
from attnlab.models.heads import InputProjection
from attnlab.models.transformer import LayerNorm
from attnlab.ops.layer_norm import layer_norm
from attnlab.train import config as cfg_lib

OLD_TREE = os.path.join(os.path.dirname(__file__), "data", "transformer_params_ea8f1dd.json")


def np_layer_norm(x, scale, bias, eps=1e-6):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * scale + bias


def test_layer_norm_values_and_gradients_match_float64_reference():
  with jax.enable_x64(True):
    _check_layer_norm()


def _check_layer_norm():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 5, 7)) * 3 + 2  # an offset mean: centring matters
  scale, bias, w = rng.standard_normal(7), rng.standard_normal(7), rng.standard_normal((3, 5, 7))
  got = layer_norm(jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(got, np_layer_norm(x, scale, bias), rtol=1e-12, atol=1e-12)
  loss = lambda f: lambda x, s, b: jnp.sum(jnp.sin(f(x, s, b)) * w)  # every output entry weighs
  reference = lambda x, s, b: ((x - x.mean(-1, keepdims=True))
                               / jnp.sqrt(x.var(-1, keepdims=True) + 1e-6) * s + b)
  grads = jax.grad(loss(layer_norm), argnums=(0, 1, 2))(x, scale, bias)
  wants = jax.grad(loss(reference), argnums=(0, 1, 2))(x, scale, bias)
  for name, a, b in zip(("dx", "dscale", "dbias"), grads, wants):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_layer_norm_module_has_flax_parameters_and_values():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8)) * 2 + 1
  ours, flax_ln = LayerNorm(), nn.LayerNorm()
  params = flax_ln.init(jax.random.PRNGKey(1), x)
  shapes = lambda tree: jax.tree.map(jnp.shape, tree)
  assert shapes(ours.init(jax.random.PRNGKey(1), x)) == shapes(params)
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
  np.testing.assert_allclose(ours.apply(params, x), flax_ln.apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_attention_projections_initialise_and_compute_as_flax():
  """Self-attention (q, k, v concatenated into one product) and cross-attention both."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 16))
  memory = jax.random.normal(jax.random.PRNGKey(3), (2, 4, 12))
  for args in ((x,), (x, memory)):
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=4)
    ours = models.MultiHeadAttention(4)
    want_params = flax_mha.init(jax.random.PRNGKey(1), *args)
    got_params = ours.init(jax.random.PRNGKey(1), *args)
    assert jax.tree.structure(got_params) == jax.tree.structure(want_params)
    jax.tree.map(np.testing.assert_array_equal, got_params, want_params)  # same init, same seed
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(2), p.shape),
                          want_params)  # nonzero biases
    np.testing.assert_allclose(ours.apply(params, *args), flax_mha.apply(params, *args),
                               rtol=1e-5, atol=1e-5)


def test_input_projection_is_dense_for_thin_and_wide_inputs():
  with jax.enable_x64(True):
    _check_input_projection()


def _check_input_projection():
  for channels in (2, 6):  # broadcast products, and the product
    x = np.random.default_rng(channels).standard_normal((3, 5, channels))
    params = nn.Dense(8).init(jax.random.PRNGKey(0), x)
    got_params = InputProjection(8).init(jax.random.PRNGKey(0), x)
    jax.tree.map(np.testing.assert_array_equal, got_params, params)
    params = jax.tree.map(lambda p: p + 1.0, params)
    got = InputProjection(8).apply(params, jnp.asarray(x))
    assert got.dtype == jnp.float64
    kernel, bias = (np.asarray(params["params"][k], np.float64) for k in ("kernel", "bias"))
    np.testing.assert_allclose(got, x @ kernel + bias, rtol=1e-6, atol=1e-6)  # float32 params
    grad = jax.grad(lambda p: jnp.sum(jnp.sin(InputProjection(8).apply(p, jnp.asarray(x)))))(params)
    want = np.einsum("btc,btf->cf", x, np.cos(x @ kernel + bias))
    np.testing.assert_allclose(grad["params"]["kernel"], want, rtol=1e-5, atol=1e-5)


def test_comparison_transformer_keeps_the_old_parameter_tree():
  config = sweep.load_config_file("configs/adding.py")("transformer,seq_len=20")
  _, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), np.zeros((2, 20, 2), np.float32))["params"]
  with open(OLD_TREE) as f:
    old = json.load(f)["params"]
  flat = {"/".join(k.key for k in path): np.asarray(v, np.float64)
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  assert sorted(flat) == sorted(old)
  for path, leaf in flat.items():
    assert list(leaf.shape) == old[path]["shape"], path
    np.testing.assert_allclose(leaf.sum(), old[path]["sum"], rtol=1e-5, atol=1e-5, err_msg=path)
    np.testing.assert_allclose((leaf ** 2).sum(), old[path]["sum_sq"], rtol=1e-5, err_msg=path)

