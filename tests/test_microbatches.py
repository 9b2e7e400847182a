"""A train step in microbatches is the one-pass step: same loss, metric sums and gradient (float32
summation order aside), with the loss count pooled over microbatches; microbatches=0's rule."""
import jax
import numpy as np
import optax
import pytest

from attnlab import models, tasks
from attnlab.train import base_config, optim, steps
from attnlab.train import config as cfg_lib


def _transformer_step_parts():
  config = base_config("transformer", "adding", seq_len=12)
  config.model.update(d_model=8, num_heads=2, d_ff=16, num_layers=1, dropout_rate=0.0)
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  _, schedule = optim.make_optimizer(config.optimizer, 3)
  tx = optax.sgd(1.0)  # new params = params - gradient: the gradients compared directly
  batch = {k: v for k, v in tasks.generate("adding", 8, seq_len=12).items() if v.dtype != object}
  # rows 1 and 5 (microbatch 1 of 4: rows j, j+4) and row 2 unscored: the mean is over 5 rows,
  # not the mean of 4 microbatch means
  batch["mask"] = np.asarray(batch["mask"]).copy()
  batch["mask"][[1, 2, 5]] = 0.0
  state = steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch)
  return model, tx, spec, schedule, batch, state


def test_microbatched_step_equals_one_pass():
  model, tx, spec, schedule, batch, state = _transformer_step_parts()
  (new_one, m_one), (new_four, m_four) = (
      jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0, microbatches=k))(state, batch)
      for k in (1, 4))
  np.testing.assert_allclose(m_four["loss"], m_one["loss"], rtol=1e-6)
  np.testing.assert_allclose(m_four["grad_norm"], m_one["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               m_four["sums"], m_one["sums"])
  grad = lambda new: jax.tree.map(lambda a, b: a - b, state.params, new.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               grad(new_four), grad(new_one))
  assert int(new_four.step) == 1
  with pytest.raises(ValueError, match="does not divide"):
    steps.make_train_step(model, tx, spec, schedule, seed=0, microbatches=3)(state, batch)


def test_zero_splits_by_activation_bytes():
  rule = steps.Microbatching(640 << 10, 64)  # the CPU budget, the comparison's d_model
  assert [rule.count(64, t) for t in (20, 40, 150, 500, 1000)] == [1, 1, 4, 16, 32]
  assert steps.Microbatching(640 << 10, 640).count(64, 150) == 64  # 10 vmapped runs: 1 row each
  config = base_config("transformer", "adding", seq_len=150)
  want = cfg_lib.MICROBATCH_BYTES.get(jax.default_backend())
  got = cfg_lib.microbatches(config, runs_together=2)
  if want is None or jax.device_count() > 1:
    assert got == 1
  else:
    assert got == steps.Microbatching(want["budget"], 2 * config.model.d_model)
    assert cfg_lib.microbatches(base_config("lstm", "adding", seq_len=150)) == 1
  config.microbatches = 3
  with pytest.raises(ValueError, match="microbatches=3"):
    cfg_lib.validate(config, 1)
