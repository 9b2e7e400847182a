"""Populations: runs that differ in seed and in the optimizer's scalars train as one program, each
member in its own workdir exactly as if it had been trained alone; checkpoints move between a run
trained alone and one trained in a population, and old checkpoints (before the optimizer state
carried its hyper-parameters) still restore."""
import json
import os
import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import attnlab
from attnlab import sweep
from attnlab.train import base_config, checkpoints, metric_writer, optim, steps
from attnlab.train import config as cfg_lib
from attnlab.train import trainer as trainer_module
from attnlab.train import train_and_evaluate, train_seeds
from attnlab.train.trainer import Preempted

LRS, SEEDS = (0.01, 0.003), (0, 1)
TIMED = ("steps_per_sec", "checkpoint_blocked_s")  # wall-clock rows differ from run to run


def tiny_config(arg: str = ""):
  """A tiny LSTM on adding (6 steps, checkpoints at 3 and 6), with `arg`'s overrides
  ('lr=0.01,seed=1'): the sweep's get_config."""
  config = base_config("lstm", "adding", seq_len=12)
  config.model.hidden_size = 8
  config.num_train_steps, config.batch_size, config.num_eval_batches = 6, 8, 2
  config.eval_every = config.checkpoint_every = 3
  config.log_every = 1
  config.checkpoint.async_save = False
  _, overrides = cfg_lib.parse_arg(arg, "lstm")
  return cfg_lib.apply_overrides(config, overrides)


def member(lr, seed, **fields):
  return tiny_config(",".join([f"lr={lr}", f"seed={seed}"] + [f"{k}={v}" for k, v in fields.items()]))


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
  """{(lr, seed): workdir} of the four runs trained one by one."""
  root = tmp_path_factory.mktemp("alone")
  out = {}
  for lr in LRS:
    for seed in SEEDS:
      out[lr, seed] = str(root / f"lr{lr}_s{seed}")
      train_and_evaluate(member(lr, seed), out[lr, seed])
  return out


def rows(workdir) -> list:
  """metrics.jsonl without its wall-clock values (and rows that held only those)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    out = [{k: v for k, v in json.loads(line).items() if k not in TIMED} for line in f]
  return [r for r in out if set(r) != {"step"}]


def tree_files(workdir) -> list:
  """The workdir's files and folders, three levels deep (checkpoints/3/state): what orbax writes
  inside an item, and the TensorBoard file's timestamped name, vary from save to save."""
  out = set()
  for d, _, fs in os.walk(workdir):
    for f in fs:
      if "lock" not in f:
        parts = os.path.relpath(os.path.join(d, f), workdir).split(os.sep)[:3]
        out.add("/".join(re.sub(r"^events\.out\.tfevents\..*", "events", p) for p in parts))
  return sorted(out)


def assert_same_run(workdir, single, exact: bool, config_differs=None, same_files=True):
  """`workdir` holds what the single run wrote: config.json byte for byte (but for the field
  `config_differs`), the same files (`same_files`), the same metrics and parameters (bit for bit when `exact`,
  else to float32 rounding)."""
  with open(os.path.join(workdir, "config.json")) as a, open(os.path.join(single, "config.json")) as b:
    got, want = json.loads(a.read()), json.loads(b.read())
  got.pop(config_differs, None), want.pop(config_differs, None)
  assert got == want
  assert tree_files(workdir) == tree_files(single) or not same_files
  got, want = rows(workdir), rows(single)
  assert [sorted(r) for r in got] == [sorted(r) for r in want]
  for g, w in zip(got, want):
    for key in w:
      if exact or not isinstance(w[key], float):
        assert g[key] == w[key], (key, g, w)
      else:
        assert g[key] == pytest.approx(w[key], rel=1e-5, abs=1e-7), (key, g, w)
  a, b = attnlab.load_run(workdir, "last"), attnlab.load_run(single, "last")
  assert a.step == b.step == 6
  compare = np.testing.assert_array_equal if exact else (
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7))
  jax.tree.map(compare, a.params, b.params)
  jax.tree.map(compare, a.opt_state, b.opt_state)


def count_programs(monkeypatch) -> list:
  """The number of runs of every training program started from now on."""
  calls, original = [], trainer_module._train
  monkeypatch.setattr(trainer_module, "_train", lambda *a: calls.append(len(a[0])) or original(*a))
  return calls


# ---------------------------------------------------------------------------- grouping


def test_population_key_groups_seeds_and_optimizer_scalars_only():
  base = cfg_lib.population_key(tiny_config())
  for arg in ("seed=3", "lr=0.5", "optimizer.warmup_steps=4", "optimizer.clip_norm=2.0",
              "optimizer.weight_decay=0.1", "optimizer.schedule_steps=50"):
    assert cfg_lib.population_key(tiny_config(arg)) == base, arg
  for arg in ("optimizer.clip_norm=0.0",  # no clipping: another optimizer state
              "optimizer.schedule=rsqrt", "model.hidden_size=4", "steps=7", "optimizer.b1=0.8"):
    assert cfg_lib.population_key(tiny_config(arg)) != base, arg
  adamw = "optimizer.name=adamw"  # AdamW with weight decay has two parameter groups, without one
  assert cfg_lib.population_key(tiny_config(f"{adamw},optimizer.weight_decay=0.1")) == \
      cfg_lib.population_key(tiny_config(f"{adamw},optimizer.weight_decay=0.2"))
  assert cfg_lib.population_key(tiny_config(f"{adamw},optimizer.weight_decay=0.0")) != \
      cfg_lib.population_key(tiny_config(f"{adamw},optimizer.weight_decay=0.2"))


def test_grouping_summary_names_each_population():
  pts = sweep.points({"model": ["lstm"], "lr": [0.1, 0.2], "seed": [0, 1]})
  assert sweep.grouping_summary(sweep.populations(pts, [member(p["lr"], p["seed"]) for p in pts])) \
      == "sweep: 4 points in 1 population\n  population 1 (4 points): model=lstm lr=[0.1, 0.2] " \
         "seed=[0, 1]"
  configs = [tiny_config(f"optimizer.clip_norm={c}") for c in (0.0, 1.0)]
  assert sweep.populations([{"c": 0}, {"c": 1}], configs) == [[{"c": 0}], [{"c": 1}]]


# ---------------------------------------------------------------------------- the optimizer


def test_injected_state_is_the_old_state_with_hyperparameters_around_it():
  """Every run's optimizer state is inject_hyperparams' around the chain a run had before; its
  hyper-parameters are the config's, and a member's replace them in the update."""
  opt = tiny_config("lr=0.01,optimizer.warmup_steps=2").optimizer
  tx, schedule = optim.make_optimizer(opt, 6)
  params = {"w": jnp.array([3.0, 4.0])}
  state = tx.init(params)
  before = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(optax.constant_schedule(0.01)))
  assert jax.tree.structure(state.inner_state) == jax.tree.structure(before.init(params))
  assert {k: float(v) for k, v in state.hyperparams.items()} == {
      "learning_rate": pytest.approx(0.01), "warmup_steps": 2, "schedule_steps": 0,
      "clip_norm": 1.0, "weight_decay": 0.0}
  # Adam's first steps move each weight by lr(step) (the sign of its gradient): step 1 of a
  # 2-step warmup is lr / 2; another member's state carries its own learning rate.
  grads = {"w": jnp.array([1.0, -1.0])}
  other = optim.set_hyperparams(state, {**optim.hyperparams(opt, 6), "learning_rate": 0.5})
  for s, lr in ((state, 0.01), (other, 0.5)):
    _, s = tx.update(grads, s, params)
    updates, _ = tx.update(grads, s, params)
    np.testing.assert_allclose(updates["w"], [-lr / 2, lr / 2], rtol=1e-4)
    assert float(schedule.of(s.hyperparams)(1)) == pytest.approx(lr / 2)


def test_checkpoint_saved_before_injection_restores(tmp_path):
  """A checkpoint whose optimizer state is the bare chain (runs saved before populations) restores
  into the injected structure: its arrays, the config's hyper-parameters, count = its step."""
  config = tiny_config("lr=0.02")
  tx, _ = optim.make_optimizer(config.optimizer, config.num_train_steps)
  params = {"w": jnp.arange(3.0)}
  state = steps.TrainState(step=jnp.array(5, jnp.int32), params=params, opt_state=tx.init(params))
  mu = jax.tree.map(lambda x: x + jnp.asarray(3, x.dtype), state.opt_state.inner_state)  # not 0
  old = state.replace(opt_state=mu)
  ck = checkpoints.Checkpointer(str(tmp_path), async_save=False,
                                config_json=json.loads(json.dumps(config.to_dict())))
  ck.save(5, old, {"iterator": None})
  ck.wait()
  got, _, _ = ck.restore(jax.eval_shape(lambda: state))
  ck.close()
  jax.tree.map(np.testing.assert_array_equal, got.opt_state.inner_state, mu)
  assert int(got.opt_state.count) == 5
  assert float(got.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.02)
  assert jax.tree.structure(got) == jax.tree.structure(state)


# ---------------------------------------------------------------------------- training


@pytest.mark.slow
def test_sweep_over_lr_and_seed_trains_one_population(alone, tmp_path, monkeypatch, capsys):
  """lr=[..] seed=[..] through the sweep's library entry: one program, its grouping printed, and
  one workdir per point holding exactly what the run trained alone wrote."""
  calls = count_programs(monkeypatch)
  axes = sweep.parse_grid(f"lr=[{LRS[0]},{LRS[1]}] seed=[{SEEDS[0]},{SEEDS[1]}]")
  result = sweep.run_sweep(tiny_config, axes, str(tmp_path))
  assert calls == [4]
  assert "sweep: 4 points in 1 population" in capsys.readouterr().err
  assert [r["status"] for r in result] == ["finished"] * 4
  for point, row in zip(sweep.points(axes), result):
    assert row["workdir"] == os.path.join(str(tmp_path), sweep.point_name(point))
    single = alone[point["lr"], point["seed"]]
    assert_same_run(row["workdir"], single, exact=False)  # vmapped: float32 rounding
    assert rows(row["workdir"])[0]["learning_rate"] == pytest.approx(point["lr"])
  calls.clear()
  sweep.run_sweep(tiny_config, axes, str(tmp_path))
  assert calls == []  # finished: nothing retrained


@pytest.mark.slow
def test_population_resumes_after_sigterm(alone, tmp_path, monkeypatch):
  """A looped population killed at step 4 (no checkpoint step) resumes every member from its own
  checkpoint 3; each ends as its run trained alone did, bit for bit (looped: each member's
  products are one run's; vmapped ones differ from them in the last bits)."""
  configs = [member(lr, seed, seed_parallelism="map") for lr in LRS for seed in SEEDS]
  dirs = [str(tmp_path / f"m{i}") for i in range(4)]
  original = metric_writer.MetricWriter.write

  def write_then_sigterm(self, step, scalars):
    original(self, step, scalars)
    if step == 4 and "train_loss" in scalars and self.path.startswith(dirs[3]):
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(metric_writer.MetricWriter, "write", write_then_sigterm)
  with pytest.raises(Preempted, match="SIGTERM at step 4"):
    train_seeds(configs, dirs)
  monkeypatch.setattr(metric_writer.MetricWriter, "write", original)
  assert [attnlab.load_run(d, "last").step for d in dirs] == [4] * 4
  calls = count_programs(monkeypatch)
  train_seeds(configs, dirs)
  assert calls == [4]
  for d, config in zip(dirs, configs):
    assert_same_run(d, alone[config.optimizer.learning_rate, config.seed], exact=True,
                    config_differs="seed_parallelism", same_files=False)  # 'map' here, 'auto' there
    assert sorted(int(s) for s in os.listdir(os.path.join(d, "checkpoints"))) == [3, 4, 6]


@pytest.mark.slow
def test_runs_move_between_alone_and_population(alone, tmp_path, monkeypatch):
  """Runs trained alone to step 3 continue as one population, and a population's members continue
  alone: the optimizer state is the same structure either way."""
  calls = count_programs(monkeypatch)
  configs = [member(lr, 0) for lr in LRS]
  half = [member(lr, 0, steps=3) for lr in LRS]  # num_train_steps may change on resuming
  started_alone = [str(tmp_path / f"alone_first{i}") for i in range(2)]
  for config, workdir in zip(half, started_alone):
    train_and_evaluate(config, workdir)
  train_seeds(configs, started_alone)
  started_together = [str(tmp_path / f"together_first{i}") for i in range(2)]
  train_seeds(half, started_together)
  for config, workdir in zip(configs, started_together):
    train_and_evaluate(config, workdir)
  assert calls == [1, 1, 2, 2, 1, 1]
  for config, a, b in zip(configs, started_alone, started_together):
    single = alone[config.optimizer.learning_rate, 0]
    assert_same_run(a, single, exact=False)
    assert_same_run(b, single, exact=False)
