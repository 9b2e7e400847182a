"""Optimizers, schedules and losses against their formulas; config validation without compiling."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab import tasks
from attnlab.train import base_config, losses, optim, validate


def opt_config(**kw):
  cfg = optim.default_config()
  cfg.update(kw)
  return cfg


def test_rsqrt_schedule_is_vaswani():
  lr, warmup = 2e-3, 100
  _, schedule = optim.make_optimizer(opt_config(schedule="rsqrt", learning_rate=lr,
                                                warmup_steps=warmup), 1000)
  for step in (1, 50, 100, 400):
    want = lr * np.sqrt(warmup) * min(step**-0.5, step * warmup**-1.5)
    assert float(schedule(step)) == pytest.approx(want, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(lr, rel=1e-5)  # the peak is the learning rate


def test_warmup_cosine_and_constant_schedules():
  _, cosine = optim.make_optimizer(opt_config(schedule="warmup_cosine", learning_rate=1.0,
                                              warmup_steps=10), 110)
  assert float(cosine(0)) == 0.0 and float(cosine(10)) == pytest.approx(1.0)
  assert float(cosine(60)) == pytest.approx(0.5, abs=1e-5) and float(cosine(110)) == pytest.approx(0.0)
  _, warm = optim.make_optimizer(opt_config(learning_rate=1.0, warmup_steps=4), 100)
  assert [float(warm(s)) for s in (0, 2, 4, 50)] == pytest.approx([0.0, 0.5, 1.0, 1.0])


def test_global_norm_clipping():
  tx, _ = optim.make_optimizer(opt_config(name="sgd", momentum=0.0, learning_rate=1.0, clip_norm=1.0), 10)
  grads = {"a": jnp.array([3.0, 4.0])}  # norm 5 -> scaled to norm 1
  updates, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(updates["a"], [-0.6, -0.8], rtol=1e-6)
  small = {"a": jnp.array([0.3, 0.4])}  # below the threshold: unchanged
  np.testing.assert_allclose(tx.update(small, tx.init(small))[0]["a"], [-0.3, -0.4], rtol=1e-6)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_optimizers_step(name):
  tx, _ = optim.make_optimizer(opt_config(name=name, learning_rate=0.1, weight_decay=0.01), 10)
  params = {"w": jnp.ones(3)}
  updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
  assert float(optax.apply_updates(params, updates)["w"][0]) < 1.0


def test_classification_loss_and_label_smoothing():
  spec = tasks.spec("temporal_order", seq_len=20)
  logits = jnp.array([[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
  batch = {"targets": jnp.array([0, 2]), "mask": jnp.array([1.0, 1.0])}
  loss, sums = losses.loss_and_metrics(spec, logits, batch)
  logp = jax.nn.log_softmax(logits)
  assert float(loss) == pytest.approx(-float(logp[0, 0] + logp[1, 2]) / 2, rel=1e-6)
  assert losses.summarize(sums)["score"] == pytest.approx(0.5)
  smooth, _ = losses.loss_and_metrics(spec, logits, batch, label_smoothing=0.1)
  target = 0.9 * jax.nn.one_hot(jnp.array([0, 2]), 4) + 0.1 / 4
  assert float(smooth) == pytest.approx(-float((target * logp).sum(-1).mean()), rel=1e-6)


def test_copy_score_counts_only_the_copied_symbols():
  spec = tasks.spec("copy", seq_len=5)
  targets = jnp.array([[0, 0, 0, 3, 4]])
  logits = jax.nn.one_hot(jnp.array([[0, 0, 0, 3, 1]]), spec.num_outputs) * 10
  _, sums = losses.loss_and_metrics(spec, logits, {"targets": targets, "mask": jnp.ones((1, 5))})
  summary = losses.summarize(sums)
  assert summary["score"] == pytest.approx(0.5) and summary["accuracy"] == pytest.approx(0.8)


def test_regression_score_is_fraction_solved():
  spec = tasks.spec("adding", seq_len=10)
  near, far = 0.5 * tasks.ADDING_TOLERANCE, 1.25 * tasks.ADDING_TOLERANCE  # inside, outside
  outputs = jnp.array([[1.0], [1.0 + near], [1.0 - far]])
  batch = {"targets": jnp.ones(3), "mask": jnp.ones(3)}
  loss, sums = losses.loss_and_metrics(spec, outputs, batch)
  assert float(loss) == pytest.approx((near**2 + far**2) / 3, rel=1e-4)
  assert losses.summarize(sums)["score"] == pytest.approx(2 / 3)


def test_batch_that_does_not_divide_the_devices_is_refused():
  config = base_config("lstm", "adding", seq_len=10)
  config.batch_size = 12
  with pytest.raises(ValueError, match="batch_size=12 does not divide across the 8 devices"):
    validate(config, num_devices=8)
  with pytest.raises(ValueError, match="batch_size=12 does not divide across 5 processes"):
    validate(config, num_devices=1, num_processes=5)
  config.batch_size = 16
  config.model.name = "seq2seq_rnn"
  with pytest.raises(ValueError, match="is a seq2seq model but task 'adding' is regression"):
    validate(config, num_devices=8)


def test_schedule_steps_fixes_the_cosine_length():
  opt = opt_config(schedule="warmup_cosine", learning_rate=1.0, warmup_steps=10)
  _, short = optim.make_optimizer(opt, 110)
  opt.schedule_steps = 110
  _, kept = optim.make_optimizer(opt, 500)  # a longer run on the same schedule
  assert [float(kept(s)) for s in (5, 60, 110, 300)] == pytest.approx(
      [float(short(s)) for s in (5, 60, 110, 300)])
  assert optim.schedule_length(opt, 500) == 110
  assert optim.schedule_length(opt_config(schedule_steps=110), 500) is None  # constant: no length
  with pytest.raises(ValueError, match=r"config.optimizer.schedule_steps=0; must be None"):
    optim.check_config(opt_config(schedule_steps=0))
