"""Solving criteria, stop-when-solved runs (single and vmapped seeds), the eval schedule, the final
held-out evaluation and the gradient norms before and after clipping."""
import json
import math
import os
import shutil

import jax
import numpy as np
import pytest

import attnlab
from attnlab import data, models, sweep, tasks
from attnlab.train import base_config, checkpoints, criteria, losses, optim, solving, steps
from attnlab.train import train_and_evaluate
from attnlab.train import train_seeds, validate, vmap_seeds
from attnlab.train import trainer as trainer_module


def tiny(steps=9, seed=0):
  config = base_config("lstm", "adding", seq_len=12)
  config.model.hidden_size = 8
  config.seed = seed
  config.num_train_steps = steps
  config.batch_size = 8
  config.eval_every = config.checkpoint_every = config.log_every = 3
  config.num_eval_batches = 2
  config.checkpoint.async_save = False
  return config


class SolveAfter:
  """A stand-in criterion, met from its n-th evaluation on (never when n is None)."""

  def __init__(self, n):
    self.n, self.calls = n, 0

  def met(self, metrics):
    assert "eval_score" in metrics
    self.calls += 1
    return self.n is not None and self.calls >= self.n


def fake_criteria(monkeypatch, counts):
  """tasks.criterion hands out SolveAfter(n) for n in counts, one per run, in order."""
  fakes = [SolveAfter(n) for n in counts]
  monkeypatch.setattr(tasks, "criterion", lambda name, **params: fakes.pop(0))


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return f.read()


def rows(workdir):
  return [json.loads(line) for line in read_metrics(workdir).splitlines()]


# --- criteria ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", tasks.TASKS)
def test_every_task_has_a_criterion(name):
  criterion = tasks.criterion(name)
  assert isinstance(criterion, tasks.Criterion) and criterion.description
  at = {criterion.metric: criterion.threshold}
  assert criterion.met(at)
  assert not criterion.met({criterion.metric: criterion.threshold - 1e-6})
  assert not criterion.met({criterion.metric: math.nan})
  assert not criterion.met({})


def test_criterion_checks_its_arguments():
  with pytest.raises(ValueError, match="unknown task 'adder'; valid tasks"):
    tasks.criterion("adder")
  with pytest.raises(ValueError, match="seq_len=1 is invalid"):
    tasks.criterion("adding", seq_len=1)


def test_adding_tolerance_is_hochreiters_on_attnlabs_scale():
  """Hochreiter & Schmidhuber's target is 0.5 + (X1 + X2) / 4, X in [-1, 1], tolerance 0.04.

  attnlab's values u in [0, 1] are X = 2u - 1 on the paper's scale: map attnlab's target range onto
  the paper's target and divide the paper's tolerance by the slope of that map."""
  paper_target = lambda x1, x2: 0.5 + (x1 + x2) / 4
  to_paper = lambda u: 2 * u - 1
  lo, hi = 0.0, 2.0  # attnlab's target u1 + u2, at u1 = u2 = 0 and u1 = u2 = 1
  slope = (paper_target(to_paper(1.0), to_paper(1.0)) - paper_target(to_paper(0.0), to_paper(0.0))) \
      / (hi - lo)
  assert tasks.adding.HOCHREITER_TOLERANCE / slope == pytest.approx(tasks.ADDING_TOLERANCE)
  assert losses.SOLVED_TOLERANCE == tasks.ADDING_TOLERANCE
  assert str(tasks.ADDING_TOLERANCE) in tasks.criterion("adding").description
  tol = tasks.ADDING_TOLERANCE
  np.testing.assert_array_equal(tasks.adding_solved(np.ones(2), np.array([1 + 0.99 * tol, 1 + tol])),
                                [True, False])


@pytest.mark.parametrize("steps", [3, 32, 2000])  # hochreiter1997's window at batch 667, 63, 1
def test_the_device_window_is_met_wherever_the_host_window_is(steps):
  """criteria.possibly_met (float32 sums of device_window, on the device) against TrainingWindow.met
  (float64 sums): True wherever the host's is, also at a threshold one float64 ulp above the
  window's exact MSE; a false alarm only within DEVICE_MARGIN of the threshold; never with a wrong
  sequence or a window not yet full."""
  rng, batch, n = np.random.default_rng(steps), 8, 64
  sq = (rng.uniform(0, 0.2, (n, steps)) * batch).astype(np.float32)  # squared errors of each step
  exact = sq.astype(np.float64).sum(1) / (steps * batch)  # each window's MSE
  cases = {"just above": (np.nextafter(exact, np.inf), True, True),
           "in the margin": (exact / (1 + 0.5 * criteria.DEVICE_MARGIN), False, True),
           "past the margin": (exact / (1 + 2 * criteria.DEVICE_MARGIN), False, False)}
  for name, (threshold, host, device) in cases.items():
    windows = []
    for q, t in zip(sq, threshold):
      window = criteria.TrainingWindow(batch, steps * batch, float(t))
      window.restore({criteria.META_KEY: [(float(x), batch, 0.0) for x in q]})
      windows.append(window)
    entries, mse = criteria.device_window(windows, vmapped=True)
    assert entries.shape == (steps, n, 3) and mse.shape == (n,)
    assert [w.met() for w in windows] == [host] * n, name
    assert jax.jit(criteria.possibly_met)(entries, mse).tolist() == [device] * n, name
    entries[rng.integers(steps), :, 2] = 1.0  # one wrong sequence in each window
    assert not jax.jit(criteria.possibly_met)(entries, mse).any(), name
  # one run's window of fewer entries: padded at the front, never met until full
  window = criteria.TrainingWindow(batch, steps * batch, 1.0)
  window.restore({criteria.META_KEY: [(0.0, batch, 0.0)] * (steps - 1)})
  entries, mse = criteria.device_window([window], vmapped=False)
  assert entries.shape == (steps, 3) and mse.shape == ()
  np.testing.assert_array_equal(entries[0], criteria.PADDING)
  np.testing.assert_array_equal(entries[1:], [(0.0, batch, 0.0)] * (steps - 1))
  assert not window.met() and not criteria.possibly_met(entries, mse)
  window.add({"mse": np.float32([0, batch]), "wrong": np.float32([0, batch])})
  entries, mse = criteria.device_window([window], vmapped=False)
  assert window.met() and criteria.possibly_met(entries, mse)


def test_run_status_and_censoring_from_metrics(tmp_path):
  def workdir(name, step, lines):
    path = tmp_path / name
    os.makedirs(path / "checkpoints" / str(step))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path)

  evals = [{"step": 3, "eval_loss": 0.5, "eval_score": 0.2}, {"step": 6, "eval_loss": 0.1, "eval_score": 1.0}]
  solved = workdir("solved", 6, evals + [{"step": 6, "solved_step": 6, "solved_sequences": 48},
                                         {"step": 6, "final_wrong": 2.0, "final_sequences": 100.0}])
  status, m = sweep.run_status(solved, 9, stop_when_solved=True)
  assert status == "finished"
  assert (m["solved_step"], m["solved_sequences"], m["censored"]) == (6, 48, False)
  assert (m["final_wrong"], m["final_sequences"], m["eval_score"]) == (2, 100, 1.0)
  assert sweep.run_status(solved, 9, stop_when_solved=False)[0] == "partial"  # it goes on to 9

  capped = workdir("capped", 9, evals + [{"step": 9, "eval_loss": 0.3, "eval_score": 0.5}])
  status, m = sweep.run_status(capped, 9, stop_when_solved=True)
  assert (status, m["solved_step"], m["censored"]) == ("finished", None, True)

  # A solved row past the latest checkpoint (killed before that checkpoint was written) does not count.
  torn = workdir("torn", 3, evals + [{"step": 6, "solved_step": 6, "solved_sequences": 48}])
  status, m = sweep.run_status(torn, 9, stop_when_solved=True)
  assert (status, m["solved_step"], m["censored"], m["eval_score"]) == ("partial", None, None, 0.2)
  assert sweep.run_status(str(tmp_path / "none"), 9)[0] == "new"


@pytest.mark.parametrize("field,value,message", [
    ("eval_schedule", "exponential", r"config.eval_schedule='exponential'; valid choices: "
                                     r"\['fixed', 'geometric'\]"),
    ("eval_precision", 0.0, r"config.eval_precision=0.0; must be a number > 0"),
    ("final_eval_sequences", -1, r"config.final_eval_sequences=-1; must be an integer >= 0"),
    ("eval_lengths", (24, 0), r"config.eval_lengths=\(24, 0\); must be a tuple of positive "
                              r"integers"),
    ("eval_lengths", (1,), r"config.eval_lengths: seq_len=1 is invalid"),
])
def test_invalid_solving_fields(field, value, message):
  config = tiny()
  config[field] = value
  with pytest.raises(ValueError, match=message):
    validate(config, num_devices=1)


# --- the eval schedule ---------------------------------------------------------------------------

@pytest.mark.parametrize("every,precision", [(5, 0.1), (1, 0.25), (100, 0.05)])
def test_geometric_schedule(every, precision):
  config = tiny()
  config.eval_every, config.eval_schedule, config.eval_precision = every, "geometric", precision
  evals = solving.eval_steps(config, 200_000)
  assert evals[0] == every
  gaps = np.diff(evals)
  assert gaps.min() >= every
  for a, b in zip(evals, evals[1:]):
    if a >= every / precision:
      assert b / a <= 1 + precision
    else:
      assert b - a == every
  assert len(evals) < 200_000 / every / 10  # far fewer than the fixed schedule's
  for step in (0, 1, every, evals[7] - 1, evals[7], 12_345):  # what a resumed run starts from
    assert solving.next_eval_step(step, config) == min(s for s in evals if s > step)
  config.eval_schedule = "fixed"
  assert solving.eval_steps(config, 10 * every) == [every * i for i in range(1, 11)]


# --- per-sequence counts in the losses -----------------------------------------------------------

@pytest.mark.parametrize("name,params", [("adding", dict(seq_len=6)), ("copy", dict(seq_len=4, num_copy=3)),
                                         ("temporal_order", dict(seq_len=20)),
                                         ("reverse", dict(max_len=5))])
def test_wrong_sequences_equal_a_numpy_count(name, params):
  spec = tasks.spec(name, **params)
  batch = tasks.generate(name, 32, seed=1, **params)
  rng = np.random.default_rng(0)
  weight_key = solving.weight_key(spec)
  batch[weight_key][-5:] = 0  # padding sequences count in nothing
  keep = np.arange(32) < 27
  if spec.kind == "regression":
    pred = batch["targets"] + rng.uniform(-2, 2, 32).astype(np.float32) * tasks.ADDING_TOLERANCE
    outputs = pred[:, None]
    wrong = (np.abs(pred - batch["targets"]) >= tasks.ADDING_TOLERANCE) & keep
  else:
    targets = batch["target" if spec.kind == "seq2seq" else "targets"]
    # Logits right with probability 0.9 per position, so some sequences are wrong and some not.
    guess = np.where(rng.random(targets.shape) < 0.9, targets,
                     rng.integers(0, spec.num_outputs, targets.shape))
    outputs = np.eye(spec.num_outputs, dtype=np.float32)[guess]
    scored = batch[weight_key] > 0
    if name == "copy":
      scored &= targets != 0
    wrong = (guess != targets) & scored
    wrong = wrong.any(axis=-1) if wrong.ndim > 1 else wrong
  _, sums = losses.loss_and_metrics(spec, outputs, batch)
  count, sequences = np.asarray(sums["wrong"])
  assert 0 < wrong.sum() < 27  # both kinds occur
  assert (count, sequences) == (wrong.sum(), 27)


# --- gradient norms before and after clipping ----------------------------------------------------

@pytest.fixture(scope="module")
def sgd_setup():
  config = tiny()
  spec, model_config = validate(config, num_devices=1)
  batch = tasks.generate("adding", 8, seq_len=12)
  return models.build(model_config), spec, batch, config.optimizer


def update_norm(before, after):
  deltas = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), after, before)
  return math.sqrt(sum(float(np.sum(d * d)) for d in jax.tree.leaves(deltas)))


@pytest.mark.parametrize("clip_norm", [1e-3, 0.0])
def test_grad_norms_before_and_after_clipping(sgd_setup, clip_norm):
  """With SGD at learning rate 1 the update is the clipped gradient: its norm is grad_norm_clipped."""
  model, spec, batch, opt = sgd_setup
  opt = opt.copy_and_resolve_references()
  opt.update(name="sgd", learning_rate=1.0, momentum=0.0, clip_norm=clip_norm)
  tx, schedule = optim.make_optimizer(opt, 10)
  state = steps.create_state(model, tx, spec, jax.random.PRNGKey(0), batch)
  step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0, clip_norm=clip_norm))
  new, m = step(state, batch)
  assert update_norm(state.params, new.params) == pytest.approx(float(m["grad_norm_clipped"]), rel=1e-4)
  if clip_norm:
    assert float(m["grad_norm"]) > 10 * clip_norm
    assert float(m["grad_norm_clipped"]) == pytest.approx(clip_norm, rel=1e-4)
  else:
    assert float(m["grad_norm_clipped"]) == float(m["grad_norm"])


def test_grad_norms_per_seed_when_vmapped(sgd_setup):
  model, spec, batch, opt = sgd_setup
  opt = opt.copy_and_resolve_references()
  clip = 1e-3
  opt.update(name="sgd", learning_rate=1.0, momentum=0.0, clip_norm=clip)
  tx, schedule = optim.make_optimizer(opt, 10)
  seeds = (0, 5)
  states = vmap_seeds.init_states(model, tx, spec, seeds, batch)
  step = jax.jit(vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule, seeds, clip_norm=clip))
  new, m = step(states, batch)
  assert m["grad_norm_clipped"].shape == (2,)
  assert m["grad_norm"][0] != m["grad_norm"][1]
  for k in range(2):
    moved = update_norm(vmap_seeds.unstack(states, k).params, vmap_seeds.unstack(new, k).params)
    assert moved == pytest.approx(float(m["grad_norm_clipped"][k]), rel=1e-4)
    assert float(m["grad_norm"][k]) > float(m["grad_norm_clipped"][k])


# --- a single run that stops when solved ---------------------------------------------------------

FINAL_SEQUENCES = 20  # not a multiple of the batch size: the last batch is padded
SOLVE_AT_EVAL = 5


@pytest.fixture(scope="module")
def solved_run(tmp_path_factory):
  config = tiny(steps=40)
  config.eval_every, config.eval_schedule, config.eval_precision = 2, "geometric", 0.5
  config.stop_when_solved = True
  config.final_eval_sequences = FINAL_SEQUENCES
  workdir = str(tmp_path_factory.mktemp("solved") / "run")
  with pytest.MonkeyPatch.context() as mp:
    fake_criteria(mp, [SOLVE_AT_EVAL])
    # A looser tolerance than adding's, so that the tiny model gets some sequences right.
    mp.setattr(losses, "SOLVED_TOLERANCE", 0.3)
    result = train_and_evaluate(config, workdir)
  return config, workdir, result


def test_solved_run_stops_at_the_first_evaluation_meeting_the_criterion(solved_run):
  config, workdir, result = solved_run
  solved_step = solving.eval_steps(config, config.num_train_steps)[SOLVE_AT_EVAL - 1]
  assert solved_step < config.num_train_steps
  assert result["solved_step"] == solved_step
  assert result["solved_sequences"] == solved_step * config.batch_size
  assert result["censored"] is False
  logged = rows(workdir)
  assert [r["step"] for r in logged if "eval_loss" in r] == solving.eval_steps(config, solved_step)
  assert [r for r in logged if "solved_step" in r] == [
      {"step": solved_step, "solved_step": solved_step, "solved_sequences": solved_step * 8}]
  assert max(r["step"] for r in logged) == solved_step
  assert checkpoints.latest_step_in(workdir) == solved_step
  assert all(0 <= r["grad_norm_clipped"] <= r["grad_norm"] * (1 + 1e-6) for r in logged if "grad_norm" in r)
  status, row = sweep.run_status(workdir, config.num_train_steps, stop_when_solved=True)
  assert status == "finished"
  for key in ("solved_step", "solved_sequences", "censored", "final_wrong", "final_sequences"):
    assert row[key] == result[key]
  assert row["final_loss"] == pytest.approx(result["final_loss"])


def test_final_wrong_equals_a_numpy_count(solved_run):
  config, workdir, result = solved_run
  run = attnlab.load_run(workdir, "last")
  batch = tasks.generate("adding", FINAL_SEQUENCES, seed=config.data_seed,
                         start=data.split_start("test"), seq_len=config.task.seq_len)
  pred = np.asarray(run.model.apply({"params": run.params}, batch["inputs"], batch["lengths"]))[:, 0]
  err = pred - batch["targets"]
  wrong = int(np.sum(np.abs(err) >= 0.3))
  assert 0 < wrong < FINAL_SEQUENCES  # the count is not trivially all or none
  assert result["final_wrong"] == wrong
  assert result["final_sequences"] == FINAL_SEQUENCES
  assert result["final_mse"] == pytest.approx(float(np.mean(err**2)), rel=1e-4)
  assert result["final_score"] == pytest.approx(1 - wrong / FINAL_SEQUENCES)


@pytest.mark.slow
def test_rerunning_a_solved_run_trains_nothing(solved_run, tmp_path, monkeypatch):
  config, workdir, result = solved_run
  before = read_metrics(workdir)
  assert train_and_evaluate(config, workdir) == result
  more = config.copy_and_resolve_references()
  more.num_train_steps = 80
  assert train_and_evaluate(more, workdir) == result
  assert read_metrics(workdir) == before
  assert checkpoints.latest_step_in(workdir) == result["solved_step"]
  # Turned off, stop_when_solved lets a solved run go on; the solved step stays the first one.
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  more.stop_when_solved = False
  more.num_train_steps = result["solved_step"] + 2
  monkeypatch.setattr(losses, "SOLVED_TOLERANCE", 0.3)
  go_on = train_and_evaluate(more, copy)
  assert checkpoints.latest_step_in(copy) == more.num_train_steps
  assert (go_on["solved_step"], go_on["censored"]) == (result["solved_step"], False)
  assert go_on["final_sequences"] == FINAL_SEQUENCES


# --- vmapped seeds, each solved at its own step --------------------------------------------------

@pytest.mark.slow
def test_vmapped_seeds_each_stop_at_their_own_solved_step(tmp_path, monkeypatch):
  configs = [tiny(steps=9, seed=s) for s in (0, 1, 2)]
  for c in configs:
    c.seed_parallelism = "vmap"
    c.stop_when_solved = True
    c.final_eval_sequences = 8
  dirs = [str(tmp_path / f"s{s}") for s in (0, 1, 2)]
  calls = []
  original = trainer_module._train
  monkeypatch.setattr(trainer_module, "_train", lambda *a: calls.append(len(a[0])) or original(*a))
  with monkeypatch.context() as mp:
    fake_criteria(mp, [1, 2, None])  # seed 0 solves at the first evaluation, seed 1 at the second
    results = train_seeds(configs, dirs)
  assert calls == [3]  # one program for the three seeds
  assert [r["solved_step"] for r in results] == [3, 6, None]
  assert [r["censored"] for r in results] == [False, False, True]
  assert [r["final_sequences"] for r in results] == [8, 8, 8]
  assert [checkpoints.latest_step_in(d) for d in dirs] == [3, 6, 9]
  assert [max(r["step"] for r in rows(d)) for d in dirs] == [3, 6, 9]
  # Seed 0's checkpoint is its own state at step 3: the run it would have had alone.
  alone = str(tmp_path / "alone0")
  with monkeypatch.context() as mp:
    fake_criteria(mp, [1])
    want = train_and_evaluate(configs[0], alone)
  assert want["solved_step"] == 3
  a, b = attnlab.load_run(dirs[0], "last"), attnlab.load_run(alone, "last")
  assert a.step == b.step == 3 and a.config.seed == 0
  inputs = tasks.generate("adding", 16, seed=9, seq_len=12)
  out_a, out_b = (run.model.apply({"params": run.params}, inputs["inputs"], inputs["lengths"])
                  for run in (a, b))
  np.testing.assert_allclose(out_a, out_b, rtol=1e-3, atol=1e-4)
  assert results[0]["final_mse"] == pytest.approx(want["final_mse"], rel=1e-4)
  # Rerunning the group trains nothing in any of the three workdirs.
  before = [read_metrics(d) for d in dirs]
  calls.clear()
  assert train_seeds(configs, dirs) == results
  assert [read_metrics(d) for d in dirs] == before


# --- evaluation at other lengths (config.eval_lengths) --------------------------------------------

def test_eval_lengths_need_a_seq_len_and_positions_for_it():
  config = base_config("seq2seq_rnn", "reverse", max_len=6)
  config.eval_lengths = (12,)
  with pytest.raises(ValueError, match="task 'reverse' has no seq_len"):
    validate(config, num_devices=1)
  config = base_config("transformer", "flip_flop", seq_len=8)
  config.model.positional, config.model.max_len, config.eval_lengths = "learned", 16, (16, 32)
  with pytest.raises(ValueError, match="length 32 needs 32 learned positions, more than "
                                       "model.max_len=16"):
    validate(config, num_devices=1)
  config.eval_lengths = (15,)
  with pytest.raises(ValueError, match="config.eval_lengths: seq_len=15 is invalid; expected an"):
    validate(config, num_devices=1)


@pytest.mark.slow
def test_eval_lengths_count_wrong_reads_exactly(tmp_path):
  """Flip-flop trained at T=8, evaluated at T=8 and 24: the exact error counts equal NumPy's."""
  config = base_config("lstm", "flip_flop", seq_len=8)
  config.model.hidden_size = 8
  config.num_train_steps, config.batch_size = 2, 8
  config.eval_every = config.checkpoint_every = config.log_every = 2
  config.num_eval_batches = 1
  config.checkpoint.async_save = False
  config.final_eval_sequences, config.eval_lengths = 10, (24,)  # 10: the last batch is padded
  workdir = str(tmp_path / "run")
  result = train_and_evaluate(config, workdir)
  run = attnlab.load_run(workdir, "last")
  for length, prefix in ((8, "final_"), (24, "final_len24_")):
    batch = tasks.generate("flip_flop", 10, seed=config.data_seed, start=data.split_start("test"),
                           seq_len=length)
    logits = run.model.apply({"params": run.params}, batch["inputs"], batch["lengths"])
    wrong = (np.argmax(np.asarray(logits), -1) != batch["targets"]) & (batch["mask"] > 0)
    assert result[prefix + "scored"] == int(batch["mask"].sum())
    assert result[prefix + "errors"] == int(wrong.sum())
    assert result[prefix + "wrong"] == int(wrong.any(-1).sum())
    assert result[prefix + "sequences"] == 10
    assert result[prefix + "score"] == pytest.approx(1 - wrong.sum() / batch["mask"].sum())
  _, row = sweep.run_status(workdir, config.num_train_steps)
  assert row["final_len24_errors"] == result["final_len24_errors"]
  assert isinstance(row["final_len24_errors"], int)
