"""Several devices and several hosts, for real: simulated CPU devices and local jax.distributed processes.

Every subprocess has a hard SIGKILL timeout (jax.distributed catches SIGTERM), so a hung
collective fails the test instead of hanging CI.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

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


def _start_two_hosts(workdir, out, **env):
  """Two local jax.distributed processes with 2 CPU devices each, on a ('data', 'model') 1 x 4
  mesh split 2-way over 'model'."""
  port = _free_port()
  return [_start(workdir, out, devices=2, model_axis=2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                 JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i), **env) for i in range(2)]


def _kill_all(procs, why):
  for p in procs:
    p.kill()
  pytest.fail(f"{why}; every training process was killed (SIGKILL)")


def _finish(procs, returncode=0):
  """Waits for all; SIGKILLs every process if one runs past the timeout."""
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=TIMEOUT_S)[0])
  except subprocess.TimeoutExpired:
    _kill_all(procs, f"a training process hung for {TIMEOUT_S}s")
  for p, text in zip(procs, outputs):
    assert p.returncode == returncode, text[-3000:]
  return outputs


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
  """The tiny run trained straight by two jax.distributed processes: its result and workdir."""
  root = tmp_path_factory.mktemp("two_hosts")
  _finish(_start_two_hosts(str(root / "run"), str(root / "run.json")))
  with open(root / "run.json") as f:
    return dict(json.load(f), workdir=str(root / "run"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, two_hosts):
  root = tmp_path_factory.mktemp("distributed")
  specs = {"single": dict(devices=1), "jit8_model2": dict(devices=8, model_axis=2),
           "jit8_model4": dict(devices=8, model_axis=4), "pmap8": dict(devices=8, parallelism="pmap")}
  results = {}
  for name, kw in specs.items():
    _finish([_start(str(root / name), str(root / f"{name}.json"), **kw)])
  for name in specs:
    with open(root / f"{name}.json") as f:
      results[name] = dict(json.load(f), workdir=str(root / name))
  return dict(results, two_hosts=two_hosts)


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


def _wait_for_file(path, procs):
  """Waits until `path` exists; fails (SIGKILLing all) if a process exits first or on timeout."""
  deadline = time.time() + TIMEOUT_S
  while not os.path.exists(path):
    exited = [p for p in procs if p.poll() is not None]
    if exited:
      text = exited[0].communicate()[0]
      _kill_all(procs, f"a process exited ({exited[0].returncode}) before {path}:\n{text[-3000:]}")
    if time.time() > deadline:
      _kill_all(procs, f"no {path} after {TIMEOUT_S}s")
    time.sleep(0.05)


def test_sigterm_to_one_host_stops_both_at_one_step_and_the_rerun_resumes_bit_exact(two_hosts,
                                                                                  tmp_path):
  """Preemption on a pod reaches one host: both processes save the same step (JAX's preemption
  sync point), exit with 143, and the rerun ends with the params of the run trained straight."""
  workdir, out = str(tmp_path / "run"), str(tmp_path / "preempted.json")
  procs = _start_two_hosts(workdir, out, ATTNLAB_TEST_PREEMPT_AT="3")  # 1 step per dispatch
  _wait_for_file(f"{out}.ready.1", procs)
  procs[1].send_signal(signal.SIGTERM)  # process 1 only
  _finish(procs, returncode=128 + signal.SIGTERM)
  saved = []
  for i in range(2):
    with open(f"{out}.{i}") as f:
      saved.append(json.load(f))
  assert saved[0] == saved[1] == {"preempted_step": 3, "exit_code": 143}
  assert attnlab.load_run(workdir, "last").step == 3
  _finish(_start_two_hosts(workdir, str(tmp_path / "resumed.json")))
  with open(tmp_path / "resumed.json") as f:
    resumed = json.load(f)
  assert resumed["train_loss"] == two_hosts["train_loss"]
  want, got = attnlab.load_run(two_hosts["workdir"], "last"), attnlab.load_run(workdir, "last")
  assert want.step == got.step == 8
  jax.tree.map(np.testing.assert_array_equal, want.params, got.params)
