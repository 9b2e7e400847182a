"""Gradient-flow measurements against finite differences and synthetic decays."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import models, tasks
from attnlab.analysis import gradients
from attnlab.train import config as cfg_lib
from tests import reference as ref
from tests.marks import fast_only


def tiny_model(name, task="adding", **task_params):
  config = cfg_lib.base_config(name, task, **task_params)
  for key, value in dict(hidden_size=6, d_model=8, state_size=6, num_heads=2, d_ff=16,
                         num_layers=1, d_state=4).items():
    if key in config.model and not (key == "d_ff" and config.model.get("block") == "cell"):
      config.model[key] = value  # a single-layer cell has no MLP: d_ff there is refused
  spec = cfg_lib.task_spec(config)
  model = models.build(cfg_lib.model_config(config, spec))
  batch = tasks.generate(task, 2, seed=3, **task_params)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), batch["inputs"], batch["lengths"])["params"]
  return model, params, batch, spec


def finite_difference_norms(model, params, batch, loss_of_outputs, steps, eps=1e-6):
  """||dL/dx_t|| per example at `steps` by central differences in float64, x the embedded inputs."""
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    inputs = jnp.asarray(batch["inputs"])
    x = model.apply({"params": p64}, inputs if inputs.dtype.kind == "i" else inputs.astype(jnp.float64),
                    method="embed_inputs")
    loss = jax.jit(lambda x: loss_of_outputs(model.apply(
        {"params": p64}, x, jnp.asarray(batch["lengths"]), method="from_embeddings")))
    norms = np.zeros((x.shape[0], len(steps)))
    for b in range(x.shape[0]):
      for i, t in enumerate(steps):
        fd = []
        for e in range(x.shape[-1]):
          dx = jnp.zeros_like(x).at[b, t, e].set(eps)
          fd.append((loss(x + dx) - loss(x - dx)) / (2 * eps))
        norms[b, i] = np.linalg.norm(fd)
  return norms


@pytest.mark.parametrize("name", fast_only(["rnn", "lstm", "lru", "transformer", "mamba", "mingru", "minlstm", "slstm"],
                                           keep=("rnn", "lstm", "transformer")))
def test_input_gradient_norms_match_finite_differences(name):
  """In float64 for every backbone kind: the LSTM's hand-written VJP, the LRU's complex128 scan."""
  model, params, batch, spec = tiny_model(name, seq_len=5)
  norms = gradients.input_gradient_norms(model, params, batch, spec, per_example=True)
  squared_error = lambda out: jnp.sum((out[:, 0] - batch["targets"]) ** 2)  # the one output
  steps = (0, 2, 4)
  np.testing.assert_allclose(norms[:, steps],
                             finite_difference_norms(model, params, batch, squared_error, steps),
                             rtol=1e-5)


def test_per_step_task_differentiates_the_last_step_loss():
  """Copy (an output per step): L is the cross-entropy at each sequence's last valid step."""
  model, params, batch, spec = tiny_model("lstm", "copy", seq_len=4, num_copy=2)
  batch = dict(batch, lengths=np.array([spec.seq_len, spec.seq_len - 2]))  # last steps 7 and 5
  norms = gradients.input_gradient_norms(model, params, batch, spec, per_example=True)
  assert norms.shape == (2, spec.seq_len)
  last = batch["lengths"] - 1

  def last_step_cross_entropy(logits):
    logp = jax.nn.log_softmax(logits[np.arange(2), last])
    return -jnp.sum(logp[np.arange(2), batch["targets"][np.arange(2), last]])

  steps = tuple(range(spec.seq_len))
  want = finite_difference_norms(model, params, batch, last_step_cross_entropy, steps)
  np.testing.assert_allclose(norms, want, rtol=1e-5, atol=1e-12)
  assert np.all(want[1, 6:] == 0) and np.all(want[:, :6] > 0)  # nothing after a sequence's end


def test_state_jacobian_of_linear_rnn_is_a_matrix_power():
  """With identity activation, dh_T/dh_t = W_hh^(T-1-t) exactly: compare spectral norms."""
  rng = np.random.default_rng(0)
  h, t_steps = 4, 7
  params = {"W_xh": rng.standard_normal((3, h)), "W_hh": 0.6 * rng.standard_normal((h, h)),
            "b_h": np.zeros(h)}
  x = rng.standard_normal((2, t_steps, 3))
  out = gradients.state_jacobian_norms("rnn", params, x, activation="identity")
  want = [np.linalg.norm(np.linalg.matrix_power(params["W_hh"].T, t_steps - 1 - t), 2)
          for t in range(t_steps)]
  np.testing.assert_allclose(out["norms"], want, rtol=1e-6)
  np.testing.assert_allclose(out["singular_values"][0, 0],
                             np.linalg.svd(params["W_hh"], compute_uv=False), rtol=1e-8)


@pytest.mark.parametrize("cell", fast_only(["lstm", "gru"], keep=("lstm",)))
def test_state_jacobian_matches_autodiff_of_the_whole_recurrence(cell):
  model, params, batch, _ = tiny_model(cell, seq_len=5)
  p = params["backbone"]["layer_0_fwd"]["cell"]
  x = batch["inputs"]
  out = gradients.state_jacobian_norms(cell, p, x, singular_values=False)
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), p)
    step = gradients._step_fn(cell, p64)
    size = 12 if cell == "lstm" else 6

    def final_from(t, s_t, b):
      s = s_t[None]
      for k in range(t + 1, 5):
        s = step(s, jnp.asarray(x[b:b + 1, k], jnp.float64))
      return s[0]

    for t in (0, 3):
      norms = []
      for b in range(2):
        s = jnp.zeros((1, size), jnp.float64)
        for k in range(t + 1):
          s = step(s, jnp.asarray(x[b:b + 1, k], jnp.float64))
        jac = jax.jacfwd(lambda s_t: final_from(t, s_t, b))(s[0])
        norms.append(np.linalg.norm(np.asarray(jac), 2))
      np.testing.assert_allclose(out["norms"][t], np.mean(norms), rtol=1e-4)


def test_state_jacobian_of_mingru_is_a_product_of_its_gates():
  """h_t = a_t h_{t-1} + b_t with a_t from x only: dh_T/dh_t = diag(a_T ... a_{t+1}), norm = max
  unit.
  a_t = 1 - z_t, z_t = sigmoid(x_t W_z + b_z) (Feng et al. 2024), from NumPy, not from attnlab."""
  rng = np.random.default_rng(2)
  params = {"W_x": rng.standard_normal((3, 8)), "b": rng.standard_normal(8)}
  x = rng.standard_normal((2, 6, 3))
  out = gradients.state_jacobian_norms("mingru", params, x, singular_values=False)
  a = 1 - ref.sigmoid(x @ params["W_x"][:, :4] + params["b"][:4])  # the z block, then h~'s
  want = [np.mean([np.prod(a[b, t + 1:], axis=0).max() for b in range(2)]) for t in range(6)]
  np.testing.assert_allclose(out["norms"], want, rtol=1e-6)


def test_state_jacobian_of_slstm_matches_autodiff_of_the_whole_recurrence():
  rng = np.random.default_rng(3)
  hidden, steps = 4, 5
  params = {"W_x": rng.standard_normal((3, 4 * hidden)), "b": rng.standard_normal(4 * hidden),
            "R": 0.5 * rng.standard_normal((4, 2, 2, 2))}
  x = rng.standard_normal((1, steps, 3))
  out = gradients.state_jacobian_norms("slstm", params, x)
  assert out["singular_values"].shape == (steps, 1, 4 * hidden)
  with jax.enable_x64(True):
    step = jax.jit(gradients._step_fn("slstm", jax.tree.map(jnp.asarray, params)))
    s = jnp.zeros((1, 4 * hidden))
    for k in range(2):
      s = step(s, jnp.asarray(x[:, k]))

    def final_from(s_t):
      for k in range(2, steps):
        s_t = step(s_t, jnp.asarray(x[:, k]))
      return s_t[0]

    jac = jax.jit(jax.jacfwd(final_from))(s)[:, 0]
  np.testing.assert_allclose(out["norms"][1], np.linalg.norm(np.asarray(jac), 2), rtol=1e-4)


def test_float64_keeps_vanishing_gradients_measurable():
  """A tanh RNN at T=300 loses hundreds of decades: float32 would give 0, we give a finite log."""
  rng = np.random.default_rng(1)
  h = 16
  params = {"W_xh": rng.standard_normal((2, h)), "W_hh": 0.3 * rng.standard_normal((h, h)) / np.sqrt(h),
            "b_h": np.zeros(h)}
  out = gradients.state_jacobian_norms("rnn", params, rng.standard_normal((2, 300, 2)),
                                       singular_values=False)
  assert np.all(np.isfinite(out["log10_norms"]))
  assert out["log10_norms"][0] < -100  # below float32's smallest normal (1e-38) by far
  fit = gradients.fit_decay(log10=out["log10_norms"])
  assert fit["decades_per_step"] > 0.3 and fit["r2"] > 0.99


def test_fit_decay_recovers_synthetic_exponentials():
  t = 50
  for rate in (0.0, 0.02, 0.5):
    norms = 3.0 * 10.0 ** (-rate * np.arange(t)[::-1])
    fit = gradients.fit_decay(norms)
    assert fit["decades_per_step"] == pytest.approx(rate, abs=1e-9)
    assert fit["span_decades"] == pytest.approx(rate * (t - 1), abs=1e-9)
  noisy = 10.0 ** (-0.1 * np.arange(t)[::-1] + np.random.default_rng(0).normal(0, 0.5, t))
  fit = gradients.fit_decay(noisy)
  assert 0.05 < fit["decades_per_step"] < 0.15 and fit["r2"] < 0.99
  with pytest.raises(ValueError, match="exactly one of norms and log10"):
    gradients.fit_decay()
  # only the read-out step gets a gradient (window=0 Transformer, last-step readout): no decay to fit
  reads_out_only = np.r_[np.zeros(t - 1), 2.0]
  fit = gradients.fit_decay(reads_out_only)
  assert fit["nonzero"] == 1 and fit["span_decades"] == np.inf and np.isnan(fit["r2"])
  with pytest.raises(ValueError, match="at least one nonzero norm"):
    gradients.fit_decay(np.zeros(t))


def test_forget_gate_activations_follow_the_lstm():
  """f_t at every step against the float64 NumPy LSTM run over the same inputs."""
  from tests import reference as ref
  model, params, batch, _ = tiny_model("lstm", seq_len=5)
  p = params["backbone"]["layer_0_fwd"]["cell"]
  f = gradients.forget_gate_activations(p, batch["inputs"])
  assert f.shape == (2, 5, 6) and np.all((f > 0) & (f < 1))
  p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  x = np.asarray(batch["inputs"], np.float64)
  h = c = np.zeros((2, 6))
  for t in range(5):
    z = x[:, t] @ p64["W_x"] + h @ p64["W_h"] + p64["b"]
    np.testing.assert_allclose(f[:, t], ref.sigmoid(z[:, 6:12]), rtol=1e-5, atol=1e-6, err_msg=t)
    h, c = ref.lstm_cell(p64, (h, c), x[:, t])
