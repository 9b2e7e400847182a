"""A tiny training run in its own process, for tests that need other device counts or several hosts.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.train_worker WORKDIR OUT.json \
      [parallelism] [model_axis]

Trains a 1-layer Transformer (heads and MLP shardable) on `adding` and writes, from process 0,
{"train_loss": [...], "eval": {...}, "devices": n, "processes": n, "sharded": [param paths split
over 'model']} to OUT.json.
"""
import json
import sys

import jax

from attnlab.train import base_config, sharding, train_and_evaluate
from attnlab.train.metric_writer import read_jsonl
from attnlab.train.trainer import Parallel


def tiny_config(parallelism="jit", model_axis=1):
  config = base_config("transformer", "adding", seq_len=10)
  config.model.update(d_model=16, num_heads=4, d_ff=32, num_layers=1)
  config.num_train_steps = 8
  config.batch_size = 16
  config.eval_every = config.checkpoint_every = 4
  config.log_every = 1
  config.num_eval_batches = 2
  config.parallelism = parallelism
  config.mesh.model = model_axis
  return config


def sharded_params(config):
  """Paths of the parameters whose sharding at initialisation splits them over 'model'."""
  if config.parallelism != "jit":
    return []
  from attnlab import models, tasks
  from attnlab.train import config as cfg_lib, optim
  spec, mcfg = cfg_lib.validate(config, sharding.data_axis_size(config), jax.process_count())
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  par = Parallel(config, models.build(mcfg), tx, spec, schedule)
  example = tasks.generate("adding", 1, seq_len=10)
  state, _ = par.init_state(example)
  out = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
    if "model" in tuple(leaf.sharding.spec):
      out.append("/".join(str(getattr(k, "key", k)) for k in path))
  return out


def main(workdir, out_path, parallelism="jit", model_axis="1"):
  config = tiny_config(parallelism, int(model_axis))
  final = train_and_evaluate(config, workdir)
  if jax.process_index() == 0:
    rows = read_jsonl(f"{workdir}/metrics.jsonl")
    result = {"train_loss": [r["train_loss"] for r in rows if "train_loss" in r], "eval": final,
              "devices": jax.device_count(), "processes": jax.process_count(),
              "sharded": sharded_params(config)}
    with open(out_path, "w") as f:
      json.dump(result, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
