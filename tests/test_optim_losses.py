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


def adam_reference(params, grads_per_step, lr, b1, b2, eps, weight_decay, decayed):
  """Adam (Kingma & Ba 2015) with AdamW's decoupled weight decay (Loshchilov & Hutter 2019), in
  float64 NumPy: p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p) for the `decayed` leaves."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  for t, grads in enumerate(grads_per_step, start=1):
    for k in p:
      g = np.asarray(grads[k], np.float64)
      m[k] = b1 * m[k] + (1 - b1) * g
      v[k] = b2 * v[k] + (1 - b2) * g**2
      m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
      p[k] = p[k] - lr[k] * (m_hat / (np.sqrt(v_hat) + eps) + (weight_decay if k in decayed else 0) * p[k])
  return p


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_and_adamw_follow_their_equations_per_parameter_group(name):
  """Two steps: the recurrent group ('nu_log') gets recurrent_lr_scale * lr and never weight decay;
  adamw decays the others (decoupled: wd * p, not added to the gradient); adam ignores wd."""
  rng = np.random.default_rng(0)
  params = {"w": rng.standard_normal(4), "nu_log": rng.standard_normal(3)}
  grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(2)]
  lr, wd, scale = 0.1, 0.3, 0.25
  cfg = opt_config(name=name, learning_rate=lr, weight_decay=wd, recurrent_lr_scale=scale,
                   clip_norm=0.0, b1=0.8, b2=0.95, eps=1e-3)
  tx, _ = optim.make_optimizer(cfg, 10)
  got = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  state = tx.init(got)
  for g in grads:
    updates, state = tx.update(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), g), state, got)
    got = optax.apply_updates(got, updates)
  want = adam_reference(params, grads, {"w": lr, "nu_log": scale * lr}, 0.8, 0.95, 1e-3, wd,
                        decayed={"w"} if name == "adamw" else set())
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
  if name == "adamw":  # the decay is visible at this tolerance
    no_decay = adam_reference(params, grads, {"w": lr, "nu_log": scale * lr}, 0.8, 0.95, 1e-3, 0, set())
    assert np.abs(no_decay["w"] - want["w"]).min() > 1e-3


def test_sgd_steps_against_the_gradient():
  sgd = opt_config(name="sgd", learning_rate=0.1, momentum=0.0, clip_norm=0.0)
  tx, _ = optim.make_optimizer(sgd, 10)
  params = {"w": jnp.ones(3)}
  updates, _ = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, tx.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], [0.9, 1.2, 0.95], rtol=1e-6)


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


def test_checkpoint_keep_and_best_metric_are_checked_against_the_task():
  config = base_config("lstm", "adding", seq_len=10)
  config.checkpoint.keep = 0  # would keep no checkpoint to resume from
  with pytest.raises(ValueError, match=r"config.checkpoint.keep=0; must be an integer >= 1"):
    validate(config, num_devices=1)
  config.checkpoint.keep, config.checkpoint.best_metric = 1, "eval_nosuch"  # no best ever ranked
  with pytest.raises(ValueError, match=r"best_metric='eval_nosuch' is not evaluated for task "
                     r"'adding'; valid choices: \['eval_loss', 'eval_score', 'eval_mse', 'eval_mae'\]"):
    validate(config, num_devices=1)
  config.checkpoint.best_metric = "eval_mae"
  validate(config, num_devices=1)


@pytest.mark.parametrize("name,params", [("adding", {"seq_len": 6}), ("copy", {"seq_len": 5}),
                                         ("reverse", {"max_len": 4})])
def test_metric_names_are_the_sums_evaluation_reports(name, params):
  spec = tasks.spec(name, **params)
  batch = {k: jnp.asarray(v) for k, v in tasks.generate(name, 2, **params).items()
           if v.dtype != object}
  if spec.kind == "regression":
    outputs = jnp.zeros((2, 1))
  else:
    targets = batch["target"] if spec.kind == "seq2seq" else batch["targets"]
    outputs = jnp.zeros(targets.shape + (spec.num_outputs,))
  _, sums = losses.loss_and_metrics(spec, outputs, batch)
  assert set(losses.metric_names(spec)) == set(sums) - {"wrong"}


def test_schedule_steps_fixes_the_cosine_length_up_to_the_cap():
  opt = opt_config(schedule="warmup_cosine", learning_rate=1.0, warmup_steps=10)
  _, whole = optim.make_optimizer(opt, 500)
  opt.schedule_steps = 500
  _, capped = optim.make_optimizer(opt, 110)  # a run capped early sees the 500-step schedule
  assert [float(capped(s)) for s in (5, 60, 110)] == pytest.approx(
      [float(whole(s)) for s in (5, 60, 110)])
  assert optim.schedule_length(opt, 110) == 500
  opt.schedule_steps = 110  # a run longer than schedule_steps stretches the cosine to its end
  _, stretched = optim.make_optimizer(opt, 500)
  assert optim.schedule_length(opt, 500) == 500
  assert [float(stretched(s)) for s in (60, 300, 499)] == pytest.approx(
      [float(whole(s)) for s in (60, 300, 499)])
  assert float(stretched(300)) > 0.1  # not the rate 0 a cosine ended at step 110 would give
  assert optim.schedule_length(opt_config(schedule_steps=110), 500) is None  # constant: no length
  with pytest.raises(ValueError, match=r"config.optimizer.schedule_steps=0; must be None"):
    optim.check_config(opt_config(schedule_steps=0))
