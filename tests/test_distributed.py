"""Several devices and several hosts, for real: simulated CPU devices and local jax.distributed processes.

Every subprocess has a hard SIGKILL timeout (jax.distributed catches SIGTERM), so a hung
collective fails the test instead of hanging CI.
"""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import attnlab
from attnlab import data

pytestmark = pytest.mark.slow  # ~3 min of subprocess training; `pytest -m slow` runs it

TIMEOUT_S = 240
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(devices: int, **extra):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu", **extra)
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  # compiled as users' runs compile, with no cache shared between hosts (tests/conftest.py sets both)
  env.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)
  env.pop("ATTNLAB_COMPILATION_CACHE", None)
  env.update(extra)
  return env


def _start(workdir, out, devices, parallelism="jit", model_axis=1, **env):
  cmd = [sys.executable, "-m", "tests.train_worker", workdir, out, parallelism, str(model_axis)]
  return subprocess.Popen(cmd, cwd=ROOT, env=_env(devices, **env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(procs):
  """Waits for all; SIGKILLs every process if one runs past the timeout."""
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=TIMEOUT_S)[0])
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    pytest.fail(f"a training process hung for {TIMEOUT_S}s and was killed (SIGKILL)")
  for p, text in zip(procs, outputs):
    assert p.returncode == 0, text[-3000:]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("distributed")
  specs = {"single": dict(devices=1), "jit8_model2": dict(devices=8, model_axis=2),
           "jit8_model4": dict(devices=8, model_axis=4), "pmap8": dict(devices=8, parallelism="pmap")}
  results = {}
  for name, kw in specs.items():
    _finish([_start(str(root / name), str(root / f"{name}.json"), **kw)])
  port = _free_port()
  _finish([_start(str(root / "two_hosts"), str(root / "two_hosts.json"), devices=2, model_axis=2,
                  JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                  JAX_PROCESS_ID=str(i)) for i in range(2)])
  for name in list(specs) + ["two_hosts"]:
    with open(root / f"{name}.json") as f:
      results[name] = dict(json.load(f), workdir=str(root / name))
  return results


@pytest.mark.parametrize("name", ["jit8_model2", "jit8_model4", "pmap8", "two_hosts"])
def test_same_losses_as_one_device(runs, name):
  want = runs["single"]
  got = runs[name]
  assert got["devices"] == (4 if name == "two_hosts" else 8)
  assert len(got["train_loss"]) == len(want["train_loss"]) == 8  # one writer: no duplicate lines
  np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=1e-4)
  np.testing.assert_allclose(got["eval"]["eval_loss"], want["eval"]["eval_loss"], rtol=1e-4)


def test_two_processes_really_ran(runs):
  assert runs["two_hosts"]["processes"] == 2


@pytest.mark.parametrize("name", ["jit8_model2", "jit8_model4", "two_hosts"])
def test_model_axis_shards_attention_and_mlp(runs, name):
  sharded = runs[name]["sharded"]
  for part in ("self_attention/query/kernel", "self_attention/out/kernel", "mlp/Dense_0/kernel",
               "mlp/Dense_1/kernel"):
    assert any(p.endswith(part) for p in sharded), (part, sharded)


@pytest.mark.parametrize("name", ["jit8_model2", "pmap8", "two_hosts"])
def test_checkpoints_restore_in_a_one_device_process(runs, name):
  """The restored params reproduce, on 1 device, the eval loss the multi-device run measured."""
  assert jax.device_count() == 1
  run = attnlab.load_run(runs[name]["workdir"], "last")
  assert run.step == 8
  loader, spec = data.make_dataset("adding", {"seq_len": run.config.task.seq_len},
                                   split="validation", batch_size=run.config.batch_size,
                                   seed=run.config.seed, split_sizes={"validation": 32},
                                   shard_index=0, shard_count=1)
  sq = []
  for batch in loader:
    out = run.model.apply({"params": run.params}, batch["inputs"], batch["lengths"])
    sq.append((np.asarray(out)[:, 0] - batch["targets"]) ** 2)
  np.testing.assert_allclose(np.concatenate(sq).mean(), runs[name]["eval"]["eval_loss"], rtol=1e-5)
