"""A tiny training run in its own process, for tests that need other device counts or several hosts.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.train_worker WORKDIR OUT.json \
      [parallelism] [model_axis]

Trains a 1-layer Transformer (heads and MLP shardable) on `adding` and writes, from process 0,
{"train_loss": [...], "eval": {...}, "devices": n, "processes": n, "sharded": [param paths split
over 'model']} to OUT.json.

With ATTNLAB_TEST_PREEMPT_AT=n (several processes): at its n-th dispatch boundary each process
writes OUT.json.ready.<process index> and waits until the test's SIGTERM (sent to one process only)
has reached the coordination service and every process has told it its dispatch count; JAX then
sets the preemption sync point to dispatch n on all of them, whatever the timing. Each process
writes {"preempted_step", "exit_code"} to OUT.json.<process index> and exits with the code.
"""
import json
import os
import sys
import time

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


def wait_for_preemption_at(number: int, out_path: str, timeout_s: float = 120):
  """Makes dispatch `number` the pod-wide sync point once the test's SIGTERM arrives (see above)."""
  from jax._src import distributed
  from jax.experimental import multihost_utils
  from attnlab.train import preemption
  real, calls = multihost_utils.reached_preemption_sync_point, []

  def reached(counter):
    calls.append(counter)
    if len(calls) == number:
      with open(f"{out_path}.ready.{jax.process_index()}", "w") as f:
        f.write(str(counter))
      client = distributed.global_state.client
      client.blocking_key_value_get("RECEIVED_PREEMPTION_NOTICE", int(timeout_s * 1000))
      deadline = time.time() + timeout_s
      while len(client.key_value_dir_get("PREEMPTION_CURRENT_COUNTER/")) < jax.process_count():
        if time.time() > deadline:
          raise TimeoutError("the preemption sync protocol did not start")
        time.sleep(0.01)
    return real(counter)

  preemption.multihost_utils = type("Patched", (), {"reached_preemption_sync_point":
                                                    staticmethod(reached)})


def main(workdir, out_path, parallelism="jit", model_axis="1"):
  config = tiny_config(parallelism, int(model_axis))
  if os.environ.get("ATTNLAB_TEST_PREEMPT_AT"):
    from attnlab.train import Preempted
    wait_for_preemption_at(int(os.environ["ATTNLAB_TEST_PREEMPT_AT"]), out_path)
    try:
      train_and_evaluate(config, workdir)
    except Preempted as e:
      with open(f"{out_path}.{jax.process_index()}", "w") as f:
        json.dump({"preempted_step": e.step, "exit_code": e.exit_code}, f)
      sys.exit(e.exit_code)
    sys.exit("not preempted")
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
