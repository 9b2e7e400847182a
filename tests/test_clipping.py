"""Gradient clipping: the norm before and after it, divergence detection, the report's clipping text."""
import math

import jax
import numpy as np
import pytest

from attnlab import models, tasks
from attnlab.analysis import report
from attnlab.comparison.clipping import divergence_step
from attnlab.train import base_config, train_and_evaluate
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps


def tiny_rnn(clip_norm, steps_=3):
  config = base_config("rnn", "adding", seq_len=6)
  config.model.update(hidden_size=8, recurrent_scale=2.0)
  config.optimizer.update(name="sgd", momentum=0.0, learning_rate=0.01, clip_norm=clip_norm)
  config.num_train_steps, config.batch_size, config.num_eval_batches = steps_, 8, 1
  config.eval_every = config.checkpoint_every = config.log_every = 1
  config.checkpoint.async_save = False
  return config


@pytest.mark.parametrize("clip_norm", [0.0, 1e-3])
def test_grad_norm_after_clipping(clip_norm):
  config = tiny_rnn(clip_norm)
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, 3)
  batch = tasks.generate("adding", 8, seq_len=6)
  state = steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch)
  step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0,
                                       clip_norm=config.optimizer.clip_norm))
  _, m = step(state, batch)
  before, after = float(m["grad_norm"]), float(m["grad_norm_clipped"])
  if clip_norm:
    assert before > 10 * clip_norm  # clipping is active: the optimizer gets a gradient of norm tau
    np.testing.assert_allclose(after, clip_norm, rtol=1e-5)
    # ... which is what SGD without momentum applies: the step is lr * tau long (float32 params
    # of order 1 resolve a 1e-5 step to about 1e-3 relative)
    new, _ = step(state, batch)
    moved = optim_norm(jax.tree.map(lambda a, b: a - b, new.params, state.params))
    np.testing.assert_allclose(moved, 0.01 * clip_norm, rtol=1e-2)
  else:
    assert after == before


def optim_norm(tree):
  return math.sqrt(sum(float(np.sum(np.square(x))) for x in jax.tree.leaves(tree)))


def test_trainer_logs_both_norms(tmp_path):
  train_and_evaluate(tiny_rnn(1e-3, steps_=2), str(tmp_path))
  import attnlab
  m = attnlab.load_run(str(tmp_path), "last").metrics.dropna(subset=["grad_norm_clipped"])
  assert len(m) == 2
  assert (m["grad_norm"] > 1e-3).all()
  np.testing.assert_allclose(m["grad_norm_clipped"], 1e-3, rtol=1e-5)


def test_divergence_step():
  steps_ = [1, 2, 3, 4, 5]
  assert divergence_step(steps_, [1.0, 0.5, 0.2, 0.1, 0.1], baseline=0.2) is None
  assert divergence_step(steps_, [1.0, 0.5, float("nan"), 0.1, 0.1], baseline=0.2) == 3
  assert divergence_step(steps_, [1.0, 0.5, 0.2, float("inf"), 0.1], baseline=0.2) == 4
  # above 10 x max(baseline, first loss): blown up although finite
  assert divergence_step(steps_, [1.0, 5.0, 11.0, 0.1, 0.1], baseline=0.2) == 3
  # a first loss above 10 x baseline is an untrained start, not a divergence
  assert divergence_step(steps_, [3.0, 2.0, 1.0, 0.5, 0.1], baseline=0.2) is None
  assert divergence_step([], [], baseline=0.2) is None
  # factor inf: the first non-finite step only
  assert divergence_step(steps_, [1.0, 5.0, 11.0, float("nan"), 0.1], 0.2, factor=float("inf")) == 4


def _run(radius, clip, seed, diverged, eval_loss):
  steps_ = [1, 2, 3]
  loss = [1.0, 0.5, float("nan") if diverged else 0.05]
  norm = [2.0, 50.0, float("nan") if diverged else 3.0]
  return {"radius": radius, "clip_norm": clip, "seed": seed, "steps": steps_, "train_loss": loss,
          "grad_norm": norm, "grad_norm_clipped": [min(g, clip) if clip else g for g in norm],
          "grad_norm_stats": {"max": 50.0, "median": 3.0},
          "grad_norm_clipped_stats": {"max": clip or 50.0, "median": clip or 3.0},
          "diverged_step": 2 if diverged else None, "nonfinite_step": 3 if diverged else None,
          "final_train_loss": loss[-1],
          "init_input_grad_norms": None if clip else [1.0, 2.0, 4.0], "eval_loss": eval_loss,
          "workdir": "-"}


def _results(runs):
  return {"task": "adding", "seq_len": 30, "optimizer": "sgd", "momentum": 0.0, "learning_rate": 0.03,
          "steps": 3, "baseline": 1 / 6, "baseline_name": "predict the mean", "divergence_factor": 10.0,
          "runs": runs}


def test_summary_says_clipping_rescued_the_diverging_runs(tmp_path):
  runs = [_run(2.0, 0.0, s, True, float("nan")) for s in (0, 1)]
  runs += [_run(2.0, 1.0, s, False, 0.04) for s in (0, 1)]
  text = report.clipping_summary(_results(runs))
  assert "without clipping 2/2 seeds diverged (at step 2, 2; non-finite from step 3, 3)" in text
  assert "with clipping at τ=1.0 0/2 seeds diverged" in text
  assert "0.0400, 0.0400, 2/2 clearly below the baseline" in text
  assert "at radius 2.0 clipping turned runs that diverged into runs that trained" in text
  lines = report._clipping_section(_results(runs), str(tmp_path))
  assert "| 2.0 | 1.0 | 1 | 50 | 3 | 1 | 1 | - | - | 0.0500 | 0.0400 |" in lines
  assert "| 2.0 | off | 0 | 50 | 3 | 50 | 3 | 2 | 3 | nan | nan |" in lines
  for figure in ("clipping_loss.png", "clipping_grad_norm.png", "clipping_grad_norm_clipped.png",
                 "clipping_init_norms.png"):
    assert (tmp_path / figure).exists()


def test_summary_when_nothing_diverges_or_nothing_is_rescued():
  calm = [_run(1.0, c, 0, False, 0.15) for c in (0.0, 1.0)]
  assert "No run diverged without clipping" in report.clipping_summary(_results(calm))
  # finite but only just below the baseline (0.16 against 1/6) does not count as trained
  stuck = [_run(2.0, 0.0, 0, True, float("nan")), _run(2.0, 1.0, 0, False, 0.16)]
  text = report.clipping_summary(_results(stuck))
  assert "0/1 clearly below the baseline" in text
  assert "clipping does not rescue training" in text
  assert "At radius 2.0 clipping kept every run finite, but not every clipped run trained" in text
