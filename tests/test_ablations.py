"""The comparison's ablations (issue 26): the IRNN, recurrent cells in minGRU's residual block,
uniform attention and local windows, against float64 NumPy references and their definitions."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tests.marks import fast_only

from attnlab import models, ops
from tests import reference as ref

B, T, D, H = 2, 9, 3, 6
LENGTHS = np.array([T, 5])


def tree64(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


# ------------------------------------------------------------------------------------ IRNN


def test_irnn_init_is_exactly_the_identity_with_zero_bias_and_small_inputs():
  x = jnp.ones((1, 3, 40))
  rnn = models.RNN(hidden_size=64, activation="relu", recurrent_init="identity", input_std=1e-3)
  cell = rnn.init(jax.random.PRNGKey(0), x)["params"]["layer_0_fwd"]["cell"]
  np.testing.assert_array_equal(cell["W_hh"], np.eye(64))
  np.testing.assert_array_equal(cell["b_h"], 0.0)
  assert 0.9e-3 < np.std(cell["W_xh"]) < 1.1e-3 and abs(np.mean(cell["W_xh"])) < 1e-4  # 2560 draws
  lstm = models.LSTM(hidden_size=5, recurrent_init="identity").init(jax.random.PRNGKey(0), x)
  np.testing.assert_array_equal(lstm["params"]["layer_0_fwd"]["cell"]["W_h"], np.tile(np.eye(5), 4))
  default = models.RNN(hidden_size=8).init(jax.random.PRNGKey(0), x)["params"]
  assert not np.allclose(default["layer_0_fwd"]["cell"]["W_hh"], np.eye(8))  # orthogonal: default


def test_irnn_sequence_matches_the_float64_relu_loop_with_lengths():
  """ReLU RNN with W_hh = I, b = 0 (the IRNN's start): each sequence is the loop of
  h_t = relu(x_t W_xh + h_{t-1}) over its valid steps; padding keeps the state."""
  rng = np.random.default_rng(0)
  p = {"W_xh": 0.5 * rng.standard_normal((D, H)), "W_hh": np.eye(H), "b_h": np.zeros(H)}
  x, h0 = rng.standard_normal((B, T, D)), np.abs(rng.standard_normal((B, H)))
  relu = lambda z: np.maximum(z, 0.0)
  with jax.enable_x64(True):
    hs, h_t = ops.rnn(tree64(p), jnp.asarray(x), jnp.asarray(h0), activation="relu",
                      lengths=jnp.asarray(LENGTHS))
    assert hs.dtype == jnp.float64
  for b, n in enumerate(LENGTHS):
    cell = lambda p_, h, x_: ref.rnn_cell(p_, h, x_, relu)
    want_hs, want_h = ref.run_cell(cell, p, x[b:b + 1, :n], h0[b:b + 1])
    np.testing.assert_allclose(hs[b, :n], want_hs[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(hs[b, n:], 0.0)
    np.testing.assert_allclose(h_t[b], want_h[0], rtol=1e-12, atol=1e-12)


def test_recurrent_init_and_block_fields_are_checked():
  for fields, match in [(dict(recurrent_init="eye"), r"recurrent_init='eye'; valid choices: "
                                                     r"\['orthogonal', 'identity'\]"),
                        (dict(block="deep"), r"block='deep'; valid choices: "
                                             r"\['cell', 'residual'\]"),
                        (dict(input_std=0.0), r"input_std must be None .* got 0.0"),
                        (dict(d_ff=32), r"d_ff=32 needs model.block='residual'"),
                        (dict(block="residual", bidirectional=True), "bidirectional=True needs")]:
    with pytest.raises(ValueError, match=match):
      models.build(ml_collections.ConfigDict(dict(name="rnn", **fields)))
  with pytest.raises(ValueError,
                     match=r"attention='mean'; valid choices: \['softmax', 'uniform'\]"):
    models.build(ml_collections.ConfigDict(dict(name="transformer", attention="mean")))


# ------------------------------------------------------------------------- residual blocks


CELL_REFS = {"rnn": lambda p, h, x: ref.rnn_cell(p, h, x), "lstm": ref.lstm_cell,
             "gru": ref.gru_cell}


@pytest.mark.parametrize("cell", list(CELL_REFS))
def test_one_residual_block_with_zero_mlp_is_x_plus_cell_of_layer_norm(cell):
  """x + cell(LN(x)) in float64 NumPy, the cell run from a zero state over each valid prefix."""
  layer = models.RecurrentLayer(cell, H, parent=None)
  block = models.RecurrentBlock(layer, d_ff=8)
  x = np.random.default_rng(1).standard_normal((B, T, H))
  with jax.enable_x64(True):
    variables = tree64(block.init(jax.random.PRNGKey(0), jnp.asarray(x)))
    mlp = variables["params"]["mlp"]
    assert set(variables["params"]) == {"ln_rnn", "layer", "ln_mlp", "mlp"}
    mlp["Dense_1"]["kernel"] = jnp.zeros_like(mlp["Dense_1"]["kernel"])  # the MLP adds 0
    out = block.apply(variables, jnp.asarray(x), jnp.asarray(LENGTHS))
  p = jax.tree.map(np.asarray, variables["params"]["layer"]["cell"])
  y = ref.layer_norm(x)
  for b, n in enumerate(LENGTHS):
    zero = (np.zeros((1, H)),) * 2 if cell == "lstm" else np.zeros((1, H))
    hs = ref.run_cell(CELL_REFS[cell], p, y[b:b + 1, :n], zero)[0][0]
    np.testing.assert_allclose(out[b, :n], x[b, :n] + hs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out[b, n:], x[b, n:], rtol=1e-10, atol=1e-10)  # zero outputs there


@pytest.mark.parametrize("cell", fast_only(["rnn", "lstm", "gru"], keep=("lstm",)))
def test_residual_block_models_run_forward_and_backward_and_ignore_padding(cell):
  cfg = ml_collections.ConfigDict(dict(name=cell, block="residual", hidden_size=8, d_ff=12,
                                       num_layers=2, vocab_size=7, num_outputs=3, output="step"))
  if cell == "rnn":
    cfg.update(activation="relu", recurrent_init="identity", input_std=1e-3)
  model = models.build(cfg)
  x = jax.random.randint(jax.random.PRNGKey(0), (B, T), 1, 7)
  lengths = jnp.asarray(LENGTHS)
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x, lengths)
  params = variables["params"]
  assert set(params["backbone"]) == {"input_proj", "block_0", "block_1", "final_norm"}
  assert set(params["backbone"]["block_0"]) == {"ln_rnn", "layer", "ln_mlp", "mlp"}

  @jax.jit
  def run(params, x):
    out = model.apply({"params": params}, x, lengths)
    return out, jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, lengths) ** 2))(params)

  out, grads = run(params, x)
  assert out.shape == (B, T, 3) and np.isfinite(out).all()
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  assert np.abs(grads["backbone"]["block_1"]["layer"]["cell"][
      "W_hh" if cell == "rnn" else "W_h"]).max() > 0
  padded, _ = run(params, x.at[1, 5:].set(3))
  np.testing.assert_allclose(padded[1, :5], out[1, :5], rtol=1e-6, atol=1e-6)


def test_mingru_keeps_its_parameter_names():
  """minGRU's blocks are the shared residual block: the names (and so old checkpoints) are kept."""
  cfg = ml_collections.ConfigDict(dict(name="mingru", d_model=8, d_ff=12, num_layers=1))
  shapes = jax.eval_shape(models.build(cfg).init, jax.random.PRNGKey(0), jnp.ones((1, 4, 2)))
  backbone = shapes["params"]["backbone"]
  assert set(backbone) == {"input_proj", "block_0", "final_norm"}
  assert set(backbone["block_0"]) == {"ln_rnn", "rnn", "ln_mlp", "mlp"}


# ------------------------------------------------------------------------ uniform attention

MASKS = {"causal": dict(causal=True), "none": {}, "causal+window": dict(causal=True, window=2),
         "window": dict(window=3)}


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("name", list(MASKS))
def test_uniform_attention_equals_the_explicit_uniform_weights(name, padding):
  lengths = np.array([T, 4, 0]) if padding else None
  v = np.random.default_rng(2).standard_normal((3, T, 2, 4))
  with jax.enable_x64(True):
    got = ops.uniform_attention(jnp.asarray(v), None if lengths is None else jnp.asarray(lengths),
                                **MASKS[name])
    assert got.dtype == jnp.float64
  want = ref.uniform_attention(v, ref.self_attention_mask(T, lengths, **MASKS[name]))
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  if name == "causal":  # the definition, once more: position i averages steps 0..min(i, len - 1)
    n = T if lengths is None else lengths[1]
    np.testing.assert_allclose(got[1, 6], v[1, :min(7, n)].mean(axis=0), rtol=1e-12)
  if padding:
    np.testing.assert_array_equal(got[2], 0.0)  # a sequence of length 0 sees no key


def test_uniform_transformer_is_causal_ignores_padding_and_has_no_query_key():
  cfg = ml_collections.ConfigDict(dict(name="transformer", attention="uniform", causal=True,
                                       vocab_size=7, num_outputs=2, output="step", d_model=8,
                                       num_heads=2, d_ff=16, num_layers=2, pre_ln=True))
  model = models.build(cfg)
  x = jax.random.randint(jax.random.PRNGKey(0), (B, T), 1, 7)
  lengths = jnp.asarray(LENGTHS)
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x, lengths)
  assert set(variables["params"]["backbone"]["block_0"]["self_attention"]) == {"value", "out"}
  apply = jax.jit(model.apply)
  out = apply(variables, x, lengths)
  later = apply(variables, x.at[:, 6:].set(2), lengths)  # changes steps 6.. (padding of row 1)
  np.testing.assert_allclose(later[:, :6], out[:, :6], rtol=1e-6, atol=1e-6)
  assert not np.allclose(later[0, 6:], out[0, 6:])
  np.testing.assert_allclose(later[1, :5], out[1, :5], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- local windows

TW = 37


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", fast_only([1, 4, 16], keep=(4,)))
def test_windows_in_every_attention_impl_equal_the_float64_formula(window, causal):
  """plain, chunked (the CPU's 'auto'; chunks of 8 so windows cross chunk edges) and fused, with
  padding, against softmax over |i - j| <= window (and j <= i) in NumPy float64. Fused is held to
  float32 rounding: jax.nn.dot_product_attention takes its softmax in float32 for any input."""
  rng = np.random.default_rng(window)
  q, k, v = (rng.standard_normal((B, TW, 2, 4)) for _ in range(3))
  lengths = np.array([TW, 21])
  want = ref.attention(q, k, v, ref.self_attention_mask(TW, lengths, causal, window))[0]
  spec = dict(key_lengths=jnp.asarray(lengths), causal=causal, window=window)
  with jax.enable_x64(True):
    q64, k64, v64 = map(jnp.asarray, (q, k, v))
    got = {
        "plain": ops.scaled_dot_product_attention(
            q64, k64, v64, ops.dense_mask(ops.MaskSpec(**spec), TW, TW))[0],
        "chunked": ops.chunked_attention(q64, k64, v64, q_chunk=8, k_chunk=8, **spec),
        "fused": ops.fused_attention(q64, k64, v64, **spec),
    }
  for impl, out in got.items():
    assert out.dtype == jnp.float64, impl
    tol = 1e-6 if impl == "fused" else 1e-10
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=impl)


@pytest.mark.slow
@pytest.mark.parametrize("window", fast_only([1, 16], keep=(16,)))
def test_windowed_causal_transformer_auto_equals_plain(window):
  def build(impl):
    return models.build(ml_collections.ConfigDict(dict(
        name="transformer", vocab_size=7, num_outputs=2, output="step", d_model=8, num_heads=2,
        d_ff=16, num_layers=2, causal=True, window=window, attention_impl=impl)))
  x = jax.random.randint(jax.random.PRNGKey(0), (B, TW), 1, 7)
  lengths = jnp.asarray([TW, 21])
  variables = build("plain").init(jax.random.PRNGKey(1), x, lengths)
  np.testing.assert_allclose(jax.jit(build("auto").apply)(variables, x, lengths),
                             jax.jit(build("plain").apply)(variables, x, lengths),
                             rtol=1e-5, atol=1e-5)


def test_workdirs_from_before_the_ablation_fields_resume(tmp_path):
  import json
  from attnlab.train import base_config, run_dir
  from attnlab.train.run_dir import config_to_json
  for name, added in (("lstm", ("recurrent_init", "input_std", "block", "d_ff")),
                      ("transformer", ("attention",))):
    config = base_config(name, "adding", seq_len=10)
    old = config_to_json(config)
    for field in added:
      del old["model"][field]
    workdir = tmp_path / name
    (workdir / "checkpoints" / "3").mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps(old))
    run_dir.check_resumable_config(str(workdir), config)  # the defaults keep the old behaviour
    (workdir / "config.json").write_text(json.dumps(old))
    config.model[added[0]] = "identity" if name == "lstm" else "uniform"
    with pytest.raises(ValueError, match=f"model.{added[0]}"):
      run_dir.check_resumable_config(str(workdir), config)
