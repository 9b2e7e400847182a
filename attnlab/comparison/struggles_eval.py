"""Held-out tests of a trained run under other task parameters (the struggles part's test sets):
parity at each test length on its own, flip-flop's sparse and dense tails (Liu et al. 2023).

`evaluate_run(workdir, params, num_sequences, batch_size, cache)` restores the run's last
checkpoint (the solved step when it stopped there), sets task.{k} = v for each of `params`, and
scores `num_sequences` test-split sequences with the training code's eval step:
  -> {"score", "loss", "errors", "scored", "params"}; errors of scored are exact counts of the
     scored items (parity: strings or steps; flip-flop: reads) the run got wrong.
Every run of a task reads the same test sequences (`cache` keeps them, and one jitted eval step per
model and task config), so models are compared on identical strings.
"""
import json

import jax
import ml_collections

from attnlab import data, tasks
from attnlab.analysis.runs import load_run
from attnlab.comparison.generalisation import FORBIDDEN, _positions_forbid
from attnlab.train import config as cfg_lib
from attnlab.train import losses, solving
from attnlab.train.steps import make_eval_step


def _test_batch(name: str, params: dict, num_sequences: int, cache: dict) -> dict:
  key = ("data", name, json.dumps(params, sort_keys=True), num_sequences)
  if key not in cache:
    batch = tasks.generate(name, num_sequences, seed=0, start=data.split_start("test"), **params)
    cache[key] = {k: v for k, v in batch.items() if v.dtype != object}
  return cache[key]


def evaluate_run(workdir: str, params: dict, num_sequences: int, batch_size: int, cache: dict):
  """The run in `workdir` on test sequences of its task with `params` set (see the module doc);
  FORBIDDEN when a Transformer's learned positions cannot reach the test length."""
  run = load_run(workdir, "last")
  overrides = {f"task.{k}": v for k, v in params.items()}
  config = cfg_lib.apply_overrides(ml_collections.ConfigDict(run.config.to_dict()), overrides)
  task_params, spec = cfg_lib.task_params(config), cfg_lib.task_spec(config)
  batch = _test_batch(config.task.name, task_params, num_sequences, cache)
  if _positions_forbid(run.model, batch["inputs"].shape[1]):
    return FORBIDDEN
  key = ("step", run.config.model.to_json(), config.task.to_json())
  if key not in cache:
    cache[key] = jax.jit(make_eval_step(run.model, spec))
  total = None
  for i in range(0, num_sequences, batch_size):
    part = {k: v[i:i + batch_size] for k, v in batch.items()}
    total = losses.add_sums(total, cache[key](run.params, part))
  final = solving.final_metrics(total)
  return {"score": final["final_score"], "loss": final["final_loss"],
          "errors": final["final_errors"], "scored": final["final_scored"], "params": dict(params)}
