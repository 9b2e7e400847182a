"""The runner: exact resume (also after SIGTERM), refusals, NaN handling, corrupt checkpoints, load_run."""
import json
import os
import shutil
import signal

import jax
import numpy as np
import pytest

import attnlab
import attnlab.tasks
from attnlab.train import base_config, checkpoints, train_and_evaluate
from attnlab.train import Preempted, metric_writer
from attnlab.train import config as config_lib
from attnlab.train import trainer as trainer_module
from attnlab.configs import adding, compare, default


def tiny(model="lstm", steps=6, **task):
  config = base_config(model, "adding", seq_len=task.get("seq_len", 12))
  for key, value in dict(hidden_size=8, d_model=8, num_heads=2, d_ff=16, num_layers=1).items():
    if key in config.model and not (key == "d_ff" and config.model.get("block") == "cell"):
      config.model[key] = value  # a single-layer cell has no MLP: d_ff there is refused
  config.model.dropout_rate = 0.1 if "dropout_rate" in config.model else 0.0
  config.num_train_steps = steps
  config.batch_size = 8
  config.eval_every = config.checkpoint_every = config.log_every = 3
  config.num_eval_batches = 2
  config.checkpoint.async_save = False
  return config


def params_of(workdir, step="last"):
  return attnlab.load_run(workdir, step).params


def assert_trees_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def logged_every_step(model="transformer", steps=6, microbatches=0):
  config = tiny(model, steps)
  config.log_every = 1  # a train_loss row at every step, to signal at; checkpoints stay at 3, 6
  config.microbatches = microbatches
  return config


def test_resume_after_sigterm_is_bit_identical(tmp_path, monkeypatch):
  """In 2 microbatches per step (each its own dropout key), as config.microbatches=0 splits a long
  Transformer's batch on CPU."""
  config = lambda: logged_every_step(microbatches=2)
  straight = str(tmp_path / "straight")
  train_and_evaluate(config(), straight)

  preempted = str(tmp_path / "preempted")
  original = metric_writer.MetricWriter.write

  def write_then_sigterm(self, step, scalars):
    original(self, step, scalars)
    if step == 4 and "train_loss" in scalars:  # not a checkpoint step: only SIGTERM saves it
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(metric_writer.MetricWriter, "write", write_then_sigterm)
  with pytest.raises(Preempted, match="SIGTERM at step 4") as stopped:
    train_and_evaluate(config(), preempted)
  assert stopped.value.exit_code == 143
  monkeypatch.setattr(metric_writer.MetricWriter, "write", original)
  assert sorted(os.listdir(os.path.join(preempted, "checkpoints"))) == ["3", "4"]
  assert attnlab.load_run(preempted, "last").step == 4
  train_and_evaluate(config(), preempted)  # resumes: same data order, same dropout
  assert_trees_equal(params_of(straight), params_of(preempted))
  steps = attnlab.load_run(preempted, "last").metrics.dropna(subset=["train_loss"])["step"]
  assert steps.tolist() == [1, 2, 3, 4, 5, 6]
  with open(os.path.join(preempted, "environment.jsonl")) as f:  # one line per start
    starts = [json.loads(line) for line in f]
  assert [s["step"] for s in starts] == [0, 4]
  assert starts[1]["versions"]["jax"] == jax.__version__
  assert starts[1]["device"]["backend"] == jax.default_backend()


@pytest.mark.slow
def test_finished_run_is_kept_and_more_steps_continue_it(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(tiny(steps=3), workdir)
  first = params_of(workdir)
  train_and_evaluate(tiny(steps=3), workdir)  # finished: nothing is retrained or overwritten
  assert_trees_equal(first, params_of(workdir))
  train_and_evaluate(tiny(steps=6), workdir)  # only num_train_steps changed: continues
  run = attnlab.load_run(workdir, "last")
  assert run.step == 6
  train_and_evaluate(tiny(steps=6), str(tmp_path / "straight"))
  assert_trees_equal(run.params, params_of(str(tmp_path / "straight")))
  metrics = run.metrics
  assert {"train_loss", "grad_norm", "learning_rate", "steps_per_sec", "eval_loss",
          "eval_score"} <= set(metrics.columns)
  assert metrics["step"].max() == 6
  assert os.path.isdir(os.path.join(workdir, "tensorboard"))
  # every start is one line of what it ran with: the fresh run, the finished rerun, the continuation
  with open(os.path.join(workdir, "environment.jsonl")) as f:
    starts = [json.loads(line) for line in f]
  assert [s["step"] for s in starts] == [0, 3, 3]
  assert starts[-1]["versions"]["jax"] == jax.__version__
  assert starts[-1]["device"]["backend"] == jax.default_backend()
  assert starts[-1]["device"]["device_count"] == jax.device_count()


def test_changed_config_is_refused(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(tiny(steps=3), workdir)
  changed = tiny(steps=3)
  changed.optimizer.learning_rate = 0.5
  with pytest.raises(ValueError, match=r"optimizer.learning_rate: 0.001 -> 0.5.*use a new --workdir"):
    train_and_evaluate(changed, workdir)


@pytest.mark.parametrize("field,value,message", [
    ("model.name", "lstn", "unknown model name 'lstn'; valid names: rnn, lstm"),
    ("task.name", "adding2", "unknown task 'adding2'; valid tasks: copy"),
    ("task.seq_len", -5, "seq_len=-5 is invalid"),
    ("batch_size", 0, "config.batch_size=0; must be a positive integer"),
    ("parallelism", "pjit", "config.parallelism='pjit'; valid choices: \\['jit', 'pmap'\\]"),
    ("optimizer.name", "adagrad", "config.optimizer.name='adagrad'; valid choices"),
    ("prefetch_batches", -1, "config.prefetch_batches=-1; must be an integer >= 0"),
    ("optimizer.learning_rate", float("nan"), "config.optimizer.learning_rate=nan; must be a finite"),
    ("optimizer.learning_rate", 0.0, "config.optimizer.learning_rate=0.0; must be a finite number > 0"),
    ("optimizer.b2", 1.0, r"config.optimizer.b2=1.0; must be in \[0, 1\)"),
])
def test_invalid_configs_fail_before_compiling(tmp_path, field, value, message):
  config = tiny()
  section, _, key = field.rpartition(".")
  (config[section] if section else config)[key] = value
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = tiny("rnn", steps=12)
  config.checkpoint_every = 1
  config.optimizer.update(name="sgd", learning_rate=1e12, clip_norm=0.0, momentum=0.0)
  workdir = str(tmp_path / "run")
  with pytest.raises(FloatingPointError, match=r"non-finite training loss .* at step \d+; the last "
                     r"good checkpoint \(step \d+\)"):
    train_and_evaluate(config, workdir)
  run = attnlab.load_run(workdir, "last")
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(run.params))
  config.on_nonfinite = "record"
  shutil.rmtree(workdir)
  train_and_evaluate(config, workdir)  # records the explosion and finishes
  losses = attnlab.load_run(workdir, "last").metrics["train_loss"].dropna()
  assert not np.isfinite(losses).all()


def test_corrupt_checkpoint_is_a_clear_error_and_nothing_is_lost(tmp_path):
  workdir = str(tmp_path / "run")
  train_and_evaluate(tiny(steps=3), workdir)
  latest = os.path.join(workdir, "checkpoints", "3", "state")
  for root, _, files in os.walk(latest):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  with pytest.raises(checkpoints.CorruptCheckpointError, match=r"checkpoints/3 cannot be restored"):
    train_and_evaluate(tiny(steps=6), workdir)
  assert os.path.isdir(latest)  # the damaged checkpoint is still there for inspection


def test_best_and_last_checkpoints_and_load_run(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny(steps=9)
  config.checkpoint.keep = 2
  train_and_evaluate(config, workdir)
  best = attnlab.load_run(workdir, "best")
  scores = best.metrics.dropna(subset=["eval_score"]).set_index("step")["eval_score"]
  assert best.checkpoint_metrics["eval_score"] == pytest.approx(scores.max())
  assert best.step == scores[scores == scores.max()].index.min()  # a tie: the earlier step
  kept = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
  assert kept == sorted({6, 9, best.step})  # the last 2 and the best, in one folder
  with pytest.raises(FileNotFoundError, match="step 4 not found"):
    attnlab.load_run(workdir, 4)


CONFIG_FILES = sorted(f[:-3] for f in os.listdir(os.path.dirname(adding.__file__))
                      if f.endswith(".py") and f not in ("__init__.py", "common.py", "default.py", "compare.py"))


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_shipped_config_validates_with_every_model(name):
  import importlib
  from attnlab import models
  from attnlab.train import validate
  module = importlib.import_module(f"attnlab.configs.{name}")
  assert f"attnlab train --config={name}" in module.__doc__  # the name form: from any directory
  assert "Expected on 2 CPU cores" in module.__doc__
  config = module.get_config()
  seq2seq = config.model.name in models.SEQ2SEQ_MODELS
  for model in models.SEQ2SEQ_MODELS if seq2seq else models.SEQUENCE_MODELS:
    config = module.get_config(f"{model},steps=10")
    assert config.model.name == model and config.num_train_steps == 10
    validate(config, num_devices=1)


def test_config_arguments_and_default():
  from attnlab.train import validate
  config = adding.get_config("transformer,seq_len=30,lr=0.01,model.num_layers=3")
  assert (config.task.seq_len, config.optimizer.learning_rate, config.model.num_layers) == (30, 0.01, 3)
  assert default.get_config().comparison.to_dict() == compare.get_config("small").comparison.to_dict()
  with pytest.raises(ValueError, match="valid arguments: small, medium, full"):
    compare.get_config("huge")
  with pytest.raises(ValueError, match="config has no field 'task.seqlen'"):
    adding.get_config("lstm,task.seqlen=3")
  from attnlab.configs import reverse
  bad = reverse.get_config()
  bad.task.seq_len = 50
  with pytest.raises(ValueError, match="seq_len=50 cannot be set for task 'reverse'"):
    validate(bad, num_devices=1)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params(tmp_path):
  config = tiny("lstm", steps=3)
  config.dtype = "bfloat16"
  final = train_and_evaluate(config, str(tmp_path / "run"))
  assert np.isfinite(final["eval_loss"])
  run = attnlab.load_run(str(tmp_path / "run"), "last")
  assert {p.dtype for p in jax.tree.leaves(run.params)} == {np.dtype("float32")}
  assert run.checkpoint_metrics["config"]["dtype"] == "bfloat16"  # the config travels with it
  assert "checkpoint_blocked_s" in run.metrics.columns


def assert_same_function(workdir_a, workdir_b):
  """Two runs computed the same model: equal outputs on fresh inputs (vmapped float sums differ in
  the last bits, which Adam can amplify in parameters whose gradient is ~0, so compare outputs)."""
  a, b = attnlab.load_run(workdir_a, "last"), attnlab.load_run(workdir_b, "last")
  batch = attnlab.tasks.generate("adding", 16, seed=9, seq_len=a.config.task.seq_len)
  out_a = a.model.apply({"params": a.params}, batch["inputs"], batch["lengths"])
  out_b = b.model.apply({"params": b.params}, batch["inputs"], batch["lengths"])
  np.testing.assert_allclose(out_a, out_b, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_seeds_trained_together_equal_seeds_trained_alone(tmp_path, monkeypatch):
  """train_seeds vmaps 3 seeds into one program; each workdir ends as if its run had been alone."""
  from attnlab.train import train_seeds
  configs = []
  for seed in (0, 1, 2):
    config = tiny("transformer", steps=6)
    config.seed, config.seed_parallelism = seed, "vmap"  # 'auto' may train them one by one
    configs.append(config)
  grouped = [str(tmp_path / f"group_{s}") for s in (0, 1, 2)]
  calls = []
  original = trainer_module._train
  monkeypatch.setattr(trainer_module, "_train", lambda *a: calls.append(len(a[0])) or original(*a))
  finals = train_seeds(configs, grouped)
  assert calls == [3]  # one program for the three seeds
  for seed, workdir, final in zip((0, 1, 2), grouped, finals):
    alone = str(tmp_path / f"alone_{seed}")
    want = train_and_evaluate(configs[seed], alone)
    assert_same_function(workdir, alone)
    assert final["eval_loss"] == pytest.approx(want["eval_loss"], rel=1e-4)
    assert attnlab.load_run(workdir, "last").config.seed == seed
  a, b = params_of(grouped[0]), params_of(grouped[1])
  assert not np.allclose(jax.tree.leaves(a)[0], jax.tree.leaves(b)[0])  # the seeds differ


@pytest.mark.slow
def test_seed_parallelism_sequential_trains_seeds_one_by_one(tmp_path, monkeypatch):
  from attnlab.train import train_seeds
  configs = [tiny("lstm", steps=2) for _ in range(2)]
  configs[1].seed = 1
  calls = []
  original = trainer_module._train
  monkeypatch.setattr(trainer_module, "_train", lambda *a: calls.append(len(a[0])) or original(*a))
  for config in configs:
    config.seed_parallelism = "sequential"
  train_seeds(configs, [str(tmp_path / f"s{i}") for i in range(2)])
  assert calls == [1, 1]
  for config in configs:
    config.seed_parallelism = "auto"  # resolved per backend, model and length: SEED_LOOP
  rule = config_lib.SEED_LOOP.get(jax.default_backend())
  for name, length in (("lstm", 20), ("lstm", 200), ("gru", 20)):
    configs[0].model.name, configs[0].task.seq_len = name, length
    vmapped = rule is None or length < rule["vmap_shorter"].get(name, 0)
    assert config_lib.seed_parallelism(configs[0]) == ("vmap" if vmapped else "map")
  if jax.default_backend() == "cpu":  # the measured rule: looped, but the LSTM vmapped below T=100
    assert config_lib.seed_parallelism(configs[0]) == "map"  # gru, T=20
    configs[0].model.name, configs[0].task.seq_len = "lstm", 20
    assert config_lib.seed_parallelism(configs[0]) == "vmap"
  configs[0].seed_parallelism = "threads"
  with pytest.raises(ValueError, match="valid choices"):
    config_lib.validate(configs[0], 1)


@pytest.mark.slow
def test_seed_group_resumes_after_sigterm(tmp_path, monkeypatch):
  from attnlab.train import train_seeds
  configs = [logged_every_step("lstm") for _ in range(2)]
  configs[1].seed = 1
  for config in configs:
    config.seed_parallelism = "vmap"
  dirs = [str(tmp_path / f"s{i}") for i in range(2)]
  original = metric_writer.MetricWriter.write

  def write_then_sigterm(self, step, scalars):
    original(self, step, scalars)
    if step == 4 and "train_loss" in scalars and self.path.startswith(dirs[1]):
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(metric_writer.MetricWriter, "write", write_then_sigterm)
  with pytest.raises(Preempted, match="SIGTERM at step 4"):
    train_seeds(configs, dirs)
  monkeypatch.setattr(metric_writer.MetricWriter, "write", original)
  assert [attnlab.load_run(d, "last").step for d in dirs] == [4, 4]  # 4 is no checkpoint step
  train_seeds(configs, dirs)
  for d, config in zip(dirs, configs):
    straight = str(tmp_path / f"straight{config.seed}")
    train_and_evaluate(config, straight)
    assert_same_function(d, straight)


def test_data_seed_chooses_the_examples(tmp_path):
  """Every split, not only the order of the training set: evaluation and prepared data follow it."""
  config = tiny()
  params = attnlab.train.config.task_params(config)

  def first_inputs(config):
    return {split: next(iter(trainer_module.make_datasets(config, params, split)))["inputs"]
            for split in ("validation", "test")}

  seed0, seed0_again = first_inputs(config), first_inputs(config)
  config.data_seed = 1
  seed1 = first_inputs(config)
  for split in seed0:
    np.testing.assert_array_equal(seed0[split], seed0_again[split])
    assert not np.array_equal(seed0[split], seed1[split]), split
  config.task.update(source="prepared", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"--seed=1"):  # prepared data looked up by data_seed
    trainer_module.make_datasets(config, params, "validation")
