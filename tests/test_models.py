"""The model zoo: every registry name builds and trains; modules agree with Flax built-ins and the math."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from attnlab import models
from tests.marks import fast_only

B, T, V = 2, 6, 9
TINY = dict(hidden_size=16, d_model=16, state_size=8, num_heads=2, d_ff=32, embed_dim=8,
            attention_size=12, max_len=64, d_state=4)
MODERN = ["mamba", "mingru", "minlstm", "slstm"]


def tiny_config(name, **overrides):
  cfg = models.default_config(name)
  for key, value in TINY.items():
    if key in cfg and not (key == "d_ff" and cfg.get("block") == "cell"):  # a cell has no MLP
      cfg[key] = value
  if name in MODERN:
    cfg.num_layers = 1  # compile time; test_causal_models_ignore_padding stacks two
  cfg.update(overrides)
  return cfg


def tokens(seed=0, shape=(B, T)):
  return jax.random.randint(jax.random.PRNGKey(seed), shape, 3, V)


LENGTHS = jnp.array([T, 4])


def model_args(name, x=None):
  x = tokens() if x is None else x
  if name in models.SEQ2SEQ_MODELS:
    return (x, tokens(1), LENGTHS)
  return (x, LENGTHS)


@pytest.mark.parametrize("name", fast_only(models.MODELS, keep=("rnn", "lstm", "gru", "lru", "transformer",
                                                         "mamba", "seq2seq_attention")))
def test_every_model_builds_and_runs_forward_and_backward(name):
  cfg = tiny_config(name, vocab_size=V)
  if name in models.SEQUENCE_MODELS:
    cfg.num_outputs = 3
  model = models.build(cfg)
  args = model_args(name)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), *args)  # one program, not one per op

  @jax.jit
  def loss_and_grad(params):
    def loss(params):
      out = model.apply({"params": params}, *args)
      return jnp.mean(out**2), out
    return jax.value_and_grad(loss, has_aux=True)(params)

  (loss, out), grads = jax.device_get(loss_and_grad(variables["params"]))
  want = (B, T, V) if name in models.SEQ2SEQ_MODELS else (B, 3)
  assert out.shape == want
  assert np.isfinite(out).all() and np.isfinite(loss)
  leaves = jax.tree.leaves(grads)
  assert all(np.isfinite(g).all() for g in leaves)
  assert sum(float(np.abs(g).sum()) for g in leaves) > 0


@pytest.mark.parametrize("name", fast_only(models.SEQUENCE_MODELS, keep=("lstm", "transformer")))
def test_real_inputs_and_per_step_outputs(name):
  model = models.build(tiny_config(name, num_outputs=1, output="step"))
  x = jax.random.uniform(jax.random.PRNGKey(0), (B, T, 2))
  variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
  out = jax.jit(model.apply)(variables, x)
  assert out.shape == (B, T, 1) and jnp.isfinite(out).all()
  # Gradient of the loss with respect to every input step (the gradient-flow measurement).
  emb = jax.jit(lambda v, x: model.apply(v, x, method="embed_inputs"))(variables, x)
  g = jax.jit(jax.grad(
      lambda e: model.apply(variables, e, method="from_embeddings")[:, -1].sum()))(emb)
  assert g.shape == emb.shape and jnp.isfinite(g).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", fast_only(models.MODELS, keep=("rnn",)))
def test_vmap_over_parameter_seeds(name):
  """Several seeds in one program: vmap(init) then vmap(apply) equals each seed on its own."""
  model = models.build(tiny_config(name, vocab_size=V))
  args = model_args(name)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  stacked = jax.vmap(lambda k: model.init(k, *args))(keys)
  outs = jax.jit(jax.vmap(lambda v: model.apply(v, *args)))(stacked)
  for i, k in enumerate(keys):
    np.testing.assert_allclose(outs[i], model.apply(model.init(k, *args), *args), rtol=1e-5, atol=1e-5)


def test_unknown_names_and_fields_are_clear_errors():
  with pytest.raises(ValueError, match="unknown model name 'lstn'; valid names: rnn, lstm, gru"):
    models.build(ml_collections.ConfigDict({"name": "lstn"}))
  with pytest.raises(ValueError, match=r"no field\(s\) \['hiden_size'\]; valid fields"):
    models.build(ml_collections.ConfigDict({"name": "lstm", "hiden_size": 3}))
  with pytest.raises(ValueError, match="model.num_layers must be a positive integer, got -1"):
    models.build(tiny_config("gru", num_layers=-1))
  with pytest.raises(ValueError, match="d_model=16 must be divisible by model.num_heads=3"):
    models.build(tiny_config("transformer", num_heads=3))
  with pytest.raises(ValueError, match="needs model.vocab_size"):
    models.build(tiny_config("seq2seq_rnn"))
  with pytest.raises(ValueError, match="unknown positional 'alibi'"):
    model = models.build(tiny_config("transformer", positional="alibi", vocab_size=V))
    model.init(jax.random.PRNGKey(0), tokens())


def test_build_accepts_experiment_config():
  cfg = ml_collections.ConfigDict({"model": tiny_config("gru", vocab_size=V), "seed": 0})
  assert isinstance(models.build(cfg).backbone, models.RecurrentStack)


def test_token_model_rejects_real_inputs():
  model = models.build(tiny_config("lstm", vocab_size=V))
  with pytest.raises(ValueError, match=r"token inputs must be int \(B,T\)"):
    model.init(jax.random.PRNGKey(0), jnp.ones((B, T, 2)))


def test_multi_head_attention_matches_flax():
  x = jax.random.normal(jax.random.PRNGKey(0), (B, T, 16))
  mask = models.transformer.self_attention_mask(T, LENGTHS, causal=True)
  flax_mha = nn.MultiHeadDotProductAttention(num_heads=4)
  params = flax_mha.init(jax.random.PRNGKey(1), x)
  want = flax_mha.apply(params, x, mask=mask)
  got, weights = models.MultiHeadAttention(4).apply(params, x, mask=mask, return_weights=True)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert weights.shape == (B, 4, T, T)


def test_lstm_module_matches_flax_rnn_of_optimized_lstm_cell():
  x = jax.random.normal(jax.random.PRNGKey(0), (B, T, 5))
  ours = models.LSTM(hidden_size=7)
  variables = ours.init(jax.random.PRNGKey(1), x)
  cell = variables["params"]["layer_0_fwd"]["cell"]
  w_x, w_h, b = (np.split(np.asarray(cell[k]), 4, axis=-1) for k in ("W_x", "W_h", "b"))
  flax_params = {}
  for j, g in enumerate("ifgo"):
    flax_params["i" + g] = {"kernel": w_x[j]}
    flax_params["h" + g] = {"kernel": w_h[j], "bias": b[j]}
  want = nn.RNN(nn.OptimizedLSTMCell(7)).apply({"params": {"cell": flax_params}}, x)
  got, _ = ours.apply(variables, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_recurrent_initialisation():
  x = jnp.ones((1, 3, 4))
  rnn = models.RNN(hidden_size=32, recurrent_scale=1.5).init(jax.random.PRNGKey(0), x)
  w_hh = rnn["params"]["layer_0_fwd"]["cell"]["W_hh"]
  np.testing.assert_allclose(np.abs(np.linalg.eigvals(np.asarray(w_hh))).max(), 1.5, rtol=1e-4)
  np.testing.assert_allclose(np.linalg.svd(np.asarray(w_hh), compute_uv=False), 1.5, rtol=1e-4)
  b = models.LSTM(hidden_size=8).init(jax.random.PRNGKey(0), x)["params"]["layer_0_fwd"]["cell"]["b"]
  np.testing.assert_array_equal(np.split(np.asarray(b), 4), [[0] * 8, [1] * 8, [0] * 8, [0] * 8])
  chrono = models.LSTM(hidden_size=8, chrono_max=100).init(jax.random.PRNGKey(0), x)
  b_i, b_f, _, _ = np.split(np.asarray(chrono["params"]["layer_0_fwd"]["cell"]["b"]), 4)
  assert np.all(b_f >= 0) and np.all(b_f <= np.log(99)) and np.allclose(b_i, -b_f)


@pytest.mark.parametrize("name", fast_only(["lstm", "gru", "rnn"], keep=("rnn",)))
def test_bidirectional_recurrent_ignores_padding(name):
  model = models.build(tiny_config(name, vocab_size=V, num_outputs=3, bidirectional=True,
                                   num_layers=2))
  x = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x, LENGTHS)
  apply = jax.jit(model.apply)  # one program per input shape instead of op by op
  padded = x.at[1, 4:].set(5)  # change only the padding of sequence 1
  np.testing.assert_allclose(apply(variables, x, LENGTHS), apply(variables, padded, LENGTHS),
                             rtol=1e-6, atol=1e-6)
  short = apply(variables, x[1:, :4], LENGTHS[1:] * 0 + 4)
  np.testing.assert_allclose(apply(variables, x, LENGTHS)[1:], short, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", fast_only(["transformer", "lru", "lstm"] + MODERN, keep=("transformer", "mamba")))
def test_causal_models_ignore_future_tokens(name):
  extra = {"causal": True} if name == "transformer" else {}
  model = models.build(tiny_config(name, vocab_size=V, num_outputs=3, output="step", **extra))
  x = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  changed = x.at[:, 4:].set(tokens(7)[:, 4:])
  a, b = model.apply(variables, x), model.apply(variables, changed)
  np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-5)
  assert not np.allclose(a[:, 4:], b[:, 4:])


def test_transformer_encoder_ignores_padding_and_sows_attention_weights():
  model = models.build(tiny_config("transformer", vocab_size=V, num_outputs=3, pre_ln=True,
                                   positional="rope", attention_impl="plain"))
  x = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x, LENGTHS)
  out, state = model.apply(variables, x, LENGTHS, mutable=["intermediates"])
  padded = x.at[1, 4:].set(3)
  np.testing.assert_allclose(out, model.apply(variables, padded, LENGTHS), rtol=1e-5, atol=1e-5)
  weights = jax.tree.leaves(state["intermediates"])
  assert len(weights) == 2 and weights[0].shape == (B, 2, T, T)
  np.testing.assert_array_equal(weights[0][1, :, :, 4:], 0.0)


def test_dropout_is_active_only_in_training():
  model = models.build(tiny_config("transformer", vocab_size=V, num_outputs=3, dropout_rate=0.5))
  x = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  eval_out = model.apply(variables, x)
  np.testing.assert_array_equal(eval_out, model.apply(variables, x))
  train_out = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
  assert not np.allclose(train_out, eval_out)


def test_lru_matches_sequential_equations():
  u = jax.random.normal(jax.random.PRNGKey(0), (B, T, 4))
  layer = models.LRU(state_size=6, r_min=0.4, r_max=0.9)
  variables = layer.init(jax.random.PRNGKey(1), u)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  assert np.all(np.abs(lam) >= 0.4 - 1e-6) and np.all(np.abs(lam) <= 0.9 + 1e-6)
  np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - np.abs(lam)**2), rtol=1e-5)
  b = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
  c = p["C_re"] + 1j * p["C_im"]
  x, ys = np.zeros((B, 6), complex), []
  for t in range(T):
    x = lam * x + np.asarray(u[:, t], np.float64) @ b.T
    ys.append((x @ c.T).real + p["D"] * np.asarray(u[:, t]))
  np.testing.assert_allclose(layer.apply(variables, u), np.stack(ys, 1), rtol=1e-4, atol=1e-5)


def ks_distance(samples, cdf) -> float:
  """The Kolmogorov-Smirnov distance between the samples' empirical CDF and `cdf`."""
  s = np.sort(np.asarray(samples, np.float64))
  n, f = len(s), cdf(s)
  return max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max())


def test_lru_initialisation_follows_the_papers_distributions():
  """Orvieto et al. 2023: |lambda| uniform on the ring's area, phase U(0, max_phase), gamma =
  sqrt(1 - |lambda|^2), B ~ N(0, 1/(2H)) and C ~ N(0, 1/N) per real and imaginary part."""
  n, h, r_min, r_max, max_phase = 20000, 4, 0.4, 0.9, 1.3
  layer = models.LRU(state_size=n, r_min=r_min, r_max=r_max, max_phase=max_phase)
  p = layer.init(jax.random.PRNGKey(2), jnp.zeros((1, 2, h)))["params"]
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  radius, phase = np.exp(-np.exp(p["nu_log"])), np.exp(p["theta_log"])
  assert r_min - 1e-6 <= radius.min() and radius.max() <= r_max + 1e-6
  assert 0 <= phase.min() and phase.max() <= max_phase * (1 + 1e-6)
  bound = 1.95 / np.sqrt(n)  # the Kolmogorov-Smirnov test at the 0.1% level
  assert ks_distance(radius**2, lambda s: (s - r_min**2) / (r_max**2 - r_min**2)) < bound
  assert ks_distance(phase, lambda s: s / max_phase) < bound
  np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - radius**2), rtol=1e-5)
  for name, std in (("B_re", (2 * h)**-0.5), ("B_im", (2 * h)**-0.5), ("C_re", n**-0.5),
                    ("C_im", n**-0.5)):
    assert abs(p[name].mean()) < 0.02 * std and np.std(p[name]) == pytest.approx(std, rel=0.02), name


def test_lru_in_float64_is_float64_throughout():
  """Under x64 with float64 inputs the recurrence is complex128: outputs and gradients agree with
  float64 NumPy far below float32's resolution, and no complex64 appears in the gradient program."""
  with jax.enable_x64(True):
    u = jax.random.normal(jax.random.PRNGKey(0), (B, T, 4), jnp.float64)
    layer = models.LRU(state_size=6, r_min=0.9, r_max=0.999)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                          jax.jit(layer.init)(jax.random.PRNGKey(1), u)["params"])

    def loss(p, u):
      last = layer.apply({"params": p}, u)[:, -1]
      return jnp.sum(last**2), last

    grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
    program = str(jax.make_jaxpr(grad)(params, u))
    assert "complex128" in program and "complex64" not in program
    (g_params, g_u), got = grad(params, u)
    assert g_u.dtype == jnp.float64 and g_params["nu_log"].dtype == jnp.float64
    p = jax.tree.map(np.asarray, params)
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    b = (p["B_re"] + 1j * p["B_im"]) * np.exp(p["gamma_log"])[:, None]
    x = np.zeros((B, 6), complex)
    for t in range(T):
      x = lam * x + np.asarray(u[:, t]) @ b.T
    want = (x @ (p["C_re"] + 1j * p["C_im"]).T).real + p["D"] * np.asarray(u[:, -1])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", fast_only(models.SEQ2SEQ_MODELS, keep=("seq2seq_attention",)))
def test_greedy_decode_agrees_with_teacher_forcing(name):
  """Feeding the greedy output back with teacher forcing reproduces it: decode_step == __call__."""
  model = models.build(tiny_config(name, vocab_size=V))
  src = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(3), src, tokens(1), LENGTHS)
  out = jax.jit(lambda v, s, l: models.greedy_decode(model, v, s, l, max_len=5))(variables, src, LENGTHS)
  assert out.shape == (B, 5) and out.dtype == jnp.int32
  target_inputs = jnp.concatenate([jnp.ones((B, 1), jnp.int32), out[:, :-1]], axis=1)
  logits = jax.jit(model.apply)(variables, src, target_inputs, LENGTHS)
  np.testing.assert_array_equal(jnp.argmax(logits, -1), out)


def test_greedy_decode_pads_after_eos():
  model = models.build(tiny_config("seq2seq_rnn", vocab_size=V))
  src = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), src, src)
  raw = models.greedy_decode(model, variables, src, max_len=6)
  eos = int(raw[0, 1])  # pretend the second token is EOS
  out = np.asarray(models.greedy_decode(model, variables, src, max_len=6, eos_id=eos))
  first = np.argmax(np.asarray(raw) == eos, axis=1)
  for b in range(B):
    if (np.asarray(raw[b]) == eos).any():
      np.testing.assert_array_equal(out[b, first[b] + 1:], 0)
      np.testing.assert_array_equal(out[b, :first[b] + 1], raw[b, :first[b] + 1])


@pytest.mark.parametrize("name", fast_only(MODERN + ["lru"], keep=("mingru", "lru")))
def test_causal_models_ignore_padding(name):
  """Tokens after a sequence's length change nothing, and its outputs equal the unpadded run's."""
  model = models.build(tiny_config(name, vocab_size=V, num_outputs=3, num_layers=2))
  x = tokens()
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x, LENGTHS)
  run = jax.jit(model.apply)
  out = run(variables, x, LENGTHS)
  np.testing.assert_allclose(out, run(variables, x.at[1, 4:].set(5), LENGTHS), rtol=1e-6, atol=1e-6)
  short = model.apply(variables, x[1:, :4], LENGTHS[1:])
  np.testing.assert_allclose(out[1:], short, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mamba", "mingru"])
def test_parallel_and_sequential_scans_give_the_same_model(name):
  x = tokens()
  outs = []
  for scan in ("parallel", "sequential"):
    model = models.build(tiny_config(name, vocab_size=V, num_outputs=3, output="step", scan=scan))
    outs.append(model.apply(jax.jit(model.init)(jax.random.PRNGKey(0), x, LENGTHS), x, LENGTHS))
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,parts", [
    ("mamba", ["in_proj/kernel", "out_proj/kernel", "A_log", "conv_kernel"]),
    ("mingru", ["cell/W_x", "cell/b", "mlp/Dense_0/kernel"]),
    ("slstm", ["cell/W_x", "cell/R", "mlp/Dense_1/kernel"])])
def test_sharding_rules_split_the_new_models_over_the_model_axis(name, parts):
  from jax.sharding import Mesh
  from attnlab.train import sharding
  from attnlab.train.config import DEFAULT_AXIS_RULES
  model = models.build(tiny_config(name, vocab_size=V, num_outputs=3))
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), tokens()))["params"]
  mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  specs = sharding.param_specs(params, DEFAULT_AXIS_RULES, mesh)
  split = ["/".join(str(k.key) for k in path) for path, spec in
           jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda s: isinstance(s, P))[0]
           if "model" in tuple(spec)]
  for part in parts:
    assert any(p.endswith(part) for p in split), (part, split)
