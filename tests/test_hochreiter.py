"""Hochreiter & Schmidhuber 1997's adding protocol: the task variant 'hochreiter1997' (against
the paper's definition) and its stopping rule, config.criterion='hochreiter1997'
(attnlab.train.criteria): the window logic by hand, a tiny run that stops where the rule says,
and a resumed run that stops at the same step."""
import json
import math

import jax
import numpy as np
import pytest

import attnlab
from attnlab import data, models, tasks
from attnlab.data import builders
from attnlab.tasks import adding
from attnlab.train import base_config, criteria, dispatch, losses, train_and_evaluate, train_seeds
from attnlab.train import validate
from attnlab.train import parallel as parallel_lib
from attnlab.train.metric_writer import read_jsonl
from tests.marks import fast_only

T = 40  # T // 2 - 1 = 19 choices for the second marker; lengths 40 .. 44
N = 4000
H97 = dict(seq_len=T, variant="hochreiter1997")


@pytest.fixture(scope="module")
def batch():
  return tasks.generate("adding", N, seed=3, **H97)


def marked(batch):
  return batch["inputs"][..., 1] == 1.0


# --- the variant, against the paper's definition -------------------------------------------------

def test_values_lengths_and_padding(batch):
  values, markers, lengths = batch["inputs"][..., 0], batch["inputs"][..., 1], batch["lengths"]
  assert batch["inputs"].shape == (N, T + T // 10, 2) == (N, tasks.spec("adding", **H97).seq_len, 2)
  assert np.all(np.abs(values) <= 1.0)
  assert set(np.unique(lengths)) == set(range(T, T + T // 10 + 1))  # every length occurs
  counts = np.bincount(lengths - T)
  expected = N / (T // 10 + 1)
  assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected))  # uniform
  valid = np.arange(T + T // 10)[None, :] < lengths[:, None]
  assert np.all(values[~valid] == 0) and np.all(markers[~valid] == 0)
  inside = values[valid & ~marked(batch)]
  # U[-1, 1]: mean 0, variance 1/3, a quarter in each half of each half
  assert abs(inside.mean()) < 5 * math.sqrt(1 / 3 / inside.size)
  assert abs(inside.var() - 1 / 3) < 0.01
  assert abs(np.mean(inside < -0.5) - 0.25) < 0.01 and abs(np.mean(inside > 0.5) - 0.25) < 0.01


def test_markers(batch):
  markers, lengths = batch["inputs"][..., 1], batch["lengths"]
  plus = marked(batch)
  assert np.all(plus.sum(-1) == 2)  # exactly two pairs marked
  positions = np.sort(np.argwhere(plus)[:, 1].reshape(N, 2), axis=-1)
  a, b = positions[:, 0], positions[:, 1]
  # one of them among the first ten, the other among the first T/2 - 1 pairs still unmarked: at
  # most position T/2 - 1 (counting from 0), the last one only when the first one lies before it
  assert np.all(a < 10)
  assert np.all(b <= T // 2 - 1)
  assert np.any(b == T // 2 - 1) and np.any(b < 10)
  # -1 at the first and at the final valid pair unless marked; 0 everywhere else
  rows = np.arange(N)
  first, final = markers[:, 0], markers[rows, lengths - 1]
  assert np.all(np.where(plus[:, 0], first == 1, first == -1))
  assert np.all(np.where(plus[rows, lengths - 1], final == 1, final == -1))
  others = markers.copy()
  others[:, 0] = 0
  others[rows, lengths - 1] = 0
  assert np.all((others == 0) | (others == 1))
  # Marginals: position p < 10 is marked with probability 1/10 (first choice) + 9/10 * 1/19
  # (second), p in [10, 19] with 10/10 * 1/19 (second only), later ones never.
  freq = plus.sum(0)[:T // 2 + 1]
  want = np.array([1 / 10 + 9 / 190] * 10 + [10 / 190] * 10 + [0.0]) * N
  assert freq[-1] == 0
  assert np.all(np.abs(freq - want) < 5 * np.sqrt(want + 1))


def test_target_and_the_first_pair(batch):
  values, plus = batch["inputs"][..., 0], marked(batch)
  x = np.where(plus, values, 0.0).astype(np.float64).sum(-1)
  np.testing.assert_allclose(batch["targets"], 0.5 + x / 4.0, rtol=0, atol=1e-7)
  assert batch["targets"].dtype == np.float32
  assert np.all((batch["targets"] >= 0) & (batch["targets"] <= 1))
  # The first pair marked: its value (X1) is 0, in the input and so in the target.
  at_zero = plus[:, 0]
  p0 = 1 / 10 + (9 / 10) / (T // 2 - 1)
  assert abs(at_zero.mean() - p0) < 5 * math.sqrt(p0 / N)
  assert np.all(values[at_zero, 0] == 0) and np.all(values[~at_zero, 0] != 0)
  one = tasks.generate("adding", 1, seed=3, start=int(np.argmax(at_zero)), **H97)
  other = np.flatnonzero(one["inputs"][0, 1:, 1] == 1)[0] + 1
  assert one["targets"][0] == np.float32(0.5 + np.float64(one["inputs"][0, other, 0]) / 4)
  # Baseline: the MSE of predicting the mean 0.5.
  mse = np.mean((batch["targets"].astype(np.float64) - 0.5) ** 2)
  assert tasks.spec("adding", **H97).baseline == pytest.approx(mse, rel=0.05)
  assert tasks.spec("adding", **H97).baseline == pytest.approx((2 - p0) / 48)


def test_examples_do_not_depend_on_the_batching():
  whole = tasks.generate("adding", 6, seed=5, **H97)
  parts = [tasks.generate("adding", 3, seed=5, start=s, **H97) for s in (0, 3)]
  for key in whole:
    np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))


def test_parameters_are_checked():
  with pytest.raises(ValueError, match=r"variant='h97' is invalid; expected one of \('le2015', "
                                       r"'hochreiter1997'\)"):
    tasks.spec("adding", variant="h97")
  with pytest.raises(ValueError, match=r"seq_len=3 is invalid"):
    tasks.generate("adding", 1, seq_len=3, variant="hochreiter1997")


def old_adding(index, seed, steps):
  """The generator before variants existed (git show eb8e723:attnlab/tasks/adding.py)."""
  rng = np.random.default_rng([seed, index])
  values = rng.random(steps, dtype=np.float32)
  first = rng.integers(0, steps // 2)
  second = rng.integers(steps // 2, steps)
  markers = np.zeros(steps, np.float32)
  markers[[first, second]] = 1.0
  return dict(inputs=np.stack([values, markers], axis=-1),
              targets=values[first] + values[second],
              mask=np.float32(1.0), lengths=np.int32(steps))


@pytest.mark.parametrize("params", [dict(), dict(variant="le2015")])
def test_default_variant_is_unchanged(params):
  new = tasks.generate("adding", 50, seed=7, start=11, seq_len=30, **params)
  old = tasks.stack_examples([old_adding(11 + i, 7, 30) for i in range(50)])
  assert new.keys() == old.keys()
  for key in old:
    assert new[key].dtype == old[key].dtype
    np.testing.assert_array_equal(new[key], old[key])
  assert tasks.spec("adding", **params).baseline == pytest.approx(1 / 6)
  assert str(tasks.ADDING_TOLERANCE) in tasks.criterion("adding", **params).description


def test_prepared_datasets_of_the_variants_are_apart():
  sizes = dict(num_train=4, num_validation=2, num_test=2)
  default = builders.make_config("adding", seq_len=9, **sizes).name
  assert default == "seq_len_9-seed_0-train_4-validation_2-test_2"  # as before variants existed
  assert builders.make_config("adding", seq_len=9, variant="le2015", **sizes).name == default
  h97 = builders.make_config("adding", seq_len=9, variant="hochreiter1997", **sizes)
  assert h97.name == "seq_len_9-variant_hochreiter1997-seed_0-train_4-validation_2-test_2"
  assert h97.params == dict(seq_len=9, variant="hochreiter1997")


def test_prepared_splits_of_the_variant_equal_the_generated_ones(tmp_path):
  sizes = dict(num_train=3, num_validation=2, num_test=2)
  small = dict(seq_len=20, variant="hochreiter1997")
  for params in (small, dict(seq_len=20)):  # each variant in its own directory
    data.prepare("adding", tmp_path, seed=4, **sizes, **params)
  names = {d.name for d in (tmp_path / "attnlab_adding").iterdir() if d.name.startswith("seq_len")}
  assert names == {"seq_len_20-variant_hochreiter1997-seed_4-train_3-validation_2-test_2",
                   "seq_len_20-seed_4-train_3-validation_2-test_2"}
  for split, n in (("train", 3), ("test", 2)):
    source = data.prepared_source("adding", small, split=split, seed=4, data_dir=tmp_path,
                                  split_sizes=dict(train=3, validation=2, test=2))
    want = tasks.generate("adding", n, seed=4, start=data.split_start(split), **small)
    for i in range(n):
      for key in want:
        np.testing.assert_array_equal(np.asarray(source[i][key]), want[key][i])


def test_generated_splits_carry_the_variant():
  loader, spec = data.make_dataset("adding", H97, split="test", batch_size=4, data_seed=2)
  got = next(iter(loader))
  want = tasks.generate("adding", 4, seed=2, start=data.split_start("test"), **H97)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])
  assert spec.seq_len == T + T // 10


def test_tolerance_per_variant():
  spec = tasks.spec("adding", **H97)
  assert losses.regression_tolerance(spec) == adding.HOCHREITER_TOLERANCE == 0.04
  assert losses.regression_tolerance(tasks.spec("adding")) == tasks.ADDING_TOLERANCE == 0.08
  assert "0.04" in tasks.criterion("adding", **H97).description
  b = tasks.generate("adding", 64, seed=1, **H97)
  rng = np.random.default_rng(0)
  pred = b["targets"] + rng.uniform(-0.08, 0.08, 64).astype(np.float32)
  _, sums = losses.loss_and_metrics(spec, pred[:, None], b)
  wrong = np.abs(pred.astype(np.float64) - b["targets"]) >= 0.04
  assert 0 < wrong.sum() < 64
  assert tuple(np.asarray(sums["wrong"])) == (wrong.sum(), 64)


def test_models_read_out_the_last_valid_step():
  """A padded sequence gives the output of the same sequence cut at its length."""
  config = base_config("lstm", "adding", **H97)
  config.model.hidden_size, config.model.pooling = 8, "last"
  spec, mcfg = validate(config, num_devices=1)
  model = models.build(mcfg)
  b = tasks.generate("adding", 8, seed=0, **H97)
  params = model.init(jax.random.PRNGKey(0), b["inputs"], b["lengths"])
  padded = np.asarray(model.apply(params, b["inputs"], b["lengths"]))
  short = int(np.argmin(b["lengths"]))
  assert b["lengths"][short] < T + T // 10
  cut = model.apply(params, b["inputs"][short:short + 1, :b["lengths"][short]],
                    b["lengths"][short:short + 1])
  np.testing.assert_allclose(padded[short], np.asarray(cut)[0], rtol=1e-5, atol=1e-6)
  at_end = np.asarray(model.apply(params, b["inputs"][short:short + 1]))  # no lengths: step P - 1
  assert np.abs(at_end[0] - padded[short]).max() > 1e-4


# --- the stopping rule's window, by hand ---------------------------------------------------------

def sums(sq, n, wrong):
  return {"mse": np.array([sq, n], np.float32), "wrong": np.array([wrong, n], np.float32)}


def test_window_by_hand():
  """Batches of 500: the window is the last 4 steps = 2000 sequences."""
  steps = [(2.5, 1), (2.5, 0), (2.5, 0), (2.5, 0),  # full at step 4, but one sequence wrong
           (12.5, 0),  # steps 2-5: MSE (3 x 2.5 + 12.5) / 2000 = 0.01, not below it
           (2.0, 0),  # steps 3-6: 19.5 / 2000 = 0.00975
           (0.0, 1)]  # one wrong again
  window = criteria.TrainingWindow(500)
  assert window.steps == 4
  met = [window.add(sums(sq, 500, wrong)) for sq, wrong in steps]
  assert met == [False] * 5 + [True, False]
  assert window.window_mse() == pytest.approx(17.0 / 2000)  # steps 4-7
  assert window.window_wrong() == 1
  assert criteria.TrainingWindow(64).steps == 32  # ceil(2000 / 64): 2048 sequences


def test_window_survives_a_json_round_trip():
  rng = np.random.default_rng(0)
  stream = [(float(rng.random(dtype=np.float32)), int(rng.integers(0, 2) * (i < 6)))
            for i in range(12)]
  straight, first = criteria.TrainingWindow(8, 24, 0.2), criteria.TrainingWindow(8, 24, 0.2)
  a = [straight.add(sums(sq, 8, w)) for sq, w in stream]
  for sq, w in stream[:7]:
    first.add(sums(sq, 8, w))
  resumed = criteria.TrainingWindow(8, 24, 0.2)
  resumed.restore(json.loads(json.dumps(first.state())))
  b = a[:7] + [resumed.add(sums(sq, 8, w)) for sq, w in stream[7:]]
  assert a == b and any(a[7:])
  assert resumed.state() == straight.state()


def test_criterion_is_checked():
  config = base_config("lstm", "adding", seq_len=8)
  config.criterion = "paper"
  with pytest.raises(ValueError, match=r"config.criterion='paper'; valid choices: \['task', "
                                       r"'hochreiter1997'\]"):
    validate(config, num_devices=1)
  config = base_config("lstm", "copy", seq_len=8)
  config.criterion = "hochreiter1997"
  with pytest.raises(ValueError, match=r"needs a regression task with a tolerance \(adding\); "
                                       r"task 'copy' is classification: valid choices for it: "
                                       r"\['task'\]"):
    validate(config, num_devices=1)


# --- a tiny run that stops at the step the rule says, straight and resumed -----------------------

BATCH, WINDOW, STEPS, TOLERANCE = 8, 24, 30, 0.45  # a 3-step window; the tiny model's tolerance


def tiny(steps=STEPS, seed=0):
  config = base_config("lstm", "adding", seq_len=12, variant="hochreiter1997")
  config.model.hidden_size, config.model.pooling = 8, "last"
  config.seed, config.num_train_steps, config.batch_size = seed, steps, BATCH
  config.optimizer.learning_rate = 3e-2
  config.eval_every, config.checkpoint_every, config.log_every = 100, 5, 1
  config.num_eval_batches = 1
  config.checkpoint.async_save = False
  config.criterion = "hochreiter1997"
  return config


@pytest.fixture
def loose(monkeypatch):
  """A 3-step window and the tiny model's tolerance; returns a setter for the MSE threshold."""
  monkeypatch.setattr(criteria, "WINDOW_SEQUENCES", WINDOW)
  monkeypatch.setitem(adding.TOLERANCES, "hochreiter1997", TOLERANCE)
  return lambda mse: monkeypatch.setattr(criteria, "WINDOW_MSE", mse)


def per_step(workdir):
  """(squared errors, wrong sequences) of each training step, from train_loss / train_score."""
  with open(f"{workdir}/metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  rows = {r["step"]: r for r in rows if "train_loss" in r}
  return [(rows[s]["train_loss"] * BATCH, round((1 - rows[s]["train_score"]) * BATCH))
          for s in sorted(rows)]


def first_met(stream, mse, steps=WINDOW // BATCH):
  """The paper's rule over `stream`: the first step whose last `steps` steps have MSE < mse and
  no wrong sequence (1-based), else None."""
  for s in range(steps, len(stream) + 1):
    window = stream[s - steps:s]
    if sum(w for _, w in window) == 0 and sum(q for q, _ in window) / (steps * BATCH) < mse:
      return s
  return None


@pytest.fixture(scope="module")
def unstopped(tmp_path_factory):
  """A run whose rule is never met (threshold 0), and a threshold met first at a later step s*."""
  workdir = str(tmp_path_factory.mktemp("h97") / "never")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(criteria, "WINDOW_SEQUENCES", WINDOW)
    mp.setitem(adding.TOLERANCES, "hochreiter1997", TOLERANCE)
    mp.setattr(criteria, "WINDOW_MSE", 0.0)
    result = train_and_evaluate(tiny(), workdir)
  assert result["solved_step"] is None and result["censored"]
  stream = per_step(workdir)
  assert len(stream) == STEPS
  steps, best = WINDOW // BATCH, math.inf
  for s in range(steps, STEPS + 1):  # a step after 8 whose window beats every earlier eligible one
    window = stream[s - steps:s]
    mse = sum(q for q, _ in window) / WINDOW
    if sum(w for _, w in window) == 0:
      if s >= 8 and mse < best:
        threshold = (mse + min(best, 2 * mse)) / 2
        assert first_met(stream, threshold) == s
        return stream, threshold, s
      best = min(best, mse)
  pytest.fail(f"the tiny run never got its window right: {stream}")


def test_a_run_stops_where_the_rule_says(unstopped, loose, tmp_path):
  stream, threshold, solved = unstopped
  loose(threshold)
  config = tiny()
  config.stop_when_solved, config.final_eval_sequences = True, 20
  workdir = str(tmp_path / "run")
  result = train_and_evaluate(config, workdir)
  assert (result["solved_step"], result["solved_sequences"]) == (solved, solved * BATCH)
  assert result["censored"] is False
  assert per_step(workdir) == stream[:solved]  # it trained on, and stopped at, the same steps
  # The final evaluation: 20 test sequences, wrong as NumPy counts them at the variant's tolerance.
  run = attnlab.load_run(workdir, "last")
  assert run.step == solved
  b = tasks.generate("adding", 20, seed=0, start=data.split_start("test"), seq_len=12,
                     variant="hochreiter1997")
  pred = np.asarray(run.model.apply({"params": run.params}, b["inputs"], b["lengths"]))[:, 0]
  assert result["final_wrong"] == int(np.sum(np.abs(pred - b["targets"]) >= TOLERANCE))
  assert result["final_sequences"] == 20


@pytest.mark.slow  # resumed in K-step dispatches: test_a_k_step_run_resumed_inside_the_window...
def test_a_resumed_run_stops_at_the_same_step(unstopped, loose, tmp_path):
  """Stopped one step before s* (not a checkpoint multiple), resumed: the window restored from the
  checkpoint's meta meets the rule at s*; an empty one could not before s* + 2."""
  stream, threshold, solved = unstopped
  loose(threshold)
  workdir = str(tmp_path / "run")
  first = tiny(steps=solved - 1)
  first.stop_when_solved = True
  assert (solved - 1) % first.checkpoint_every
  assert train_and_evaluate(first, workdir)["solved_step"] is None
  again = tiny()
  again.stop_when_solved = True
  result = train_and_evaluate(again, workdir)
  assert result["solved_step"] == solved
  assert per_step(workdir) == stream[:solved]


@pytest.mark.slow
def test_vmapped_seeds_have_their_own_windows(unstopped, loose, tmp_path):
  stream, threshold, _ = unstopped
  loose(threshold)
  configs = [tiny(seed=s) for s in (0, 1)]
  for c in configs:
    c.seed_parallelism = "vmap"
  dirs = [str(tmp_path / f"s{s}") for s in (0, 1)]
  results = train_seeds(configs, dirs)
  streams = [per_step(d) for d in dirs]
  assert streams[0] != streams[1]
  for result, s in zip(results, streams):
    assert result["solved_step"] == first_met(s, threshold)
  assert results[0]["solved_step"] is not None


# --- K-step dispatches (dispatch.fused_steps_until) stop where one-step dispatches do ------------

TIMING = ("steps_per_sec", "checkpoint_blocked_s")


def k_steps(steps=STEPS, seed=0, stop=True):
  """tiny() in dispatches of up to 10 steps: logs and checkpoints every 10, evaluated at the end."""
  config = tiny(steps, seed)
  config.log_every = config.checkpoint_every = 10
  config.stop_when_solved = stop
  return config


def rows(workdir) -> list:
  """metrics.jsonl without timings (and without rows that held only timings)."""
  out = [{k: v for k, v in r.items() if k not in TIMING}
         for r in read_jsonl(f"{workdir}/metrics.jsonl")]
  return [r for r in out if set(r) != {"step"}]


def train_counted(configs, workdirs, early: bool):
  """(results, dispatches): trained with dispatch.EARLY_EXIT = early (False: one step per
  dispatch, as before it), counting the dispatches (each reads its metrics once)."""
  calls, original = [], parallel_lib.Parallel.per_run_steps
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(dispatch, "EARLY_EXIT", early)
    mp.setattr(parallel_lib.Parallel, "per_run_steps",
               lambda self, metrics: calls.append(1) or original(self, metrics))
    return train_seeds(configs, workdirs), len(calls)


class _KRuns(dict):
  """{(stop_when_solved, early): (workdir, result, dispatches)} of k_steps() at s*'s threshold,
  each pair trained when first asked for (the default suite asks for stop_when_solved only)."""

  def __init__(self, threshold, tmp_path_factory):
    super().__init__()
    self.threshold, self.tmp = threshold, tmp_path_factory

  def __missing__(self, key):
    stop, _ = key
    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(criteria, "WINDOW_SEQUENCES", WINDOW)
      mp.setitem(adding.TOLERANCES, "hochreiter1997", TOLERANCE)
      mp.setattr(criteria, "WINDOW_MSE", self.threshold)
      for early in (False, True):
        workdir = str(self.tmp.mktemp("k") / f"stop{stop}_early{early}")
        results, dispatches = train_counted([k_steps(stop=stop)], [workdir], early)
        self[stop, early] = workdir, results[0], dispatches
    return self[key]


@pytest.fixture(scope="module")
def k_runs(unstopped, tmp_path_factory):
  return _KRuns(unstopped[1], tmp_path_factory)


@pytest.mark.parametrize("stop", fast_only([True, False], keep=(True,)))
def test_k_step_dispatches_stop_and_log_as_one_step_dispatches(unstopped, k_runs, stop):
  """The same solved step, metrics.jsonl (window_mse and window_wrong at the logs included), results
  and parameters as one step per dispatch, in a few dispatches instead of one per step: each ends at
  a log or checkpoint (every 10) or where the rule may be met, and after s* (stop_when_solved False)
  the solved run's window ends none."""
  _, _, solved = unstopped
  one, one_result, one_dispatches = k_runs[stop, False]
  k, k_result, k_dispatches = k_runs[stop, True]
  assert k_result["solved_step"] == one_result["solved_step"] == solved
  assert k_result == one_result and rows(k) == rows(one)
  assert [r["step"] for r in rows(k) if "window_mse" in r] == [s for s in (10, 20, 30)
                                                             if s <= (solved if stop else STEPS)]
  last = solved if stop else STEPS
  assert one_dispatches == last
  assert k_dispatches == len({10, 20, 30, solved} & set(range(1, last + 1)))
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(one, "last").params,
               attnlab.load_run(k, "last").params)


def test_a_k_step_run_resumed_inside_the_window_stops_at_the_same_step(unstopped, k_runs, loose,
                                                                     tmp_path):
  """Stopped two steps before s* (its window of 3 then holds one step of s*'s), resumed in K-step
  dispatches: the device's window starts from the checkpoint's, so the dispatch ends at s* (an
  empty one would run past it: the host would see the rule met inside a dispatch)."""
  stream, threshold, solved = unstopped
  loose(threshold)
  workdir = str(tmp_path / "run")
  assert train_and_evaluate(k_steps(steps=solved - 2), workdir)["solved_step"] is None
  (result,), dispatches = train_counted([k_steps()], [workdir], early=True)
  assert result["solved_step"] == solved
  straight = k_runs[True, True][0]
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(straight, "last").params,
               attnlab.load_run(workdir, "last").params)
  assert attnlab.load_run(workdir, "last").step == solved
  assert dispatches == len({10, 20, solved} & set(range(solved - 1, solved + 1)))


@pytest.mark.slow  # ~15 s: two vmapped programs
def test_vmapped_seeds_in_k_step_dispatches_stop_as_in_one_step_dispatches(unstopped, loose,
                                                                          tmp_path):
  """Two seeds in one program: each stops at its own step, as with one step per dispatch; the
  stopped one's window (still trained on the device) ends no dispatch."""
  _, threshold, _ = unstopped
  loose(threshold)
  out = {}
  for early in (False, True):
    configs = [k_steps(seed=s) for s in (0, 1)]
    for c in configs:
      c.seed_parallelism = "vmap"
    dirs = [str(tmp_path / f"early{early}_s{s}") for s in (0, 1)]
    out[early] = dirs, *train_counted(configs, dirs, early)
  (one, one_results, one_dispatches), (k, k_results, k_dispatches) = out[False], out[True]
  assert k_results == one_results
  solved = [r["solved_step"] for r in k_results]
  assert solved[0] is not None and solved[0] != solved[1]
  for a, b in zip(one, k):
    assert rows(a) == rows(b)
  last = STEPS if None in solved else max(solved)
  assert one_dispatches == last
  assert k_dispatches == len({10, 20, 30, *solved} & set(range(1, last + 1)))


# --- configs and the report -----------------------------------------------------------------------

def test_config_arguments_set_the_variant_and_the_criterion():
  from attnlab.configs import adding as adding_config
  from attnlab.configs import adding_h97, compare
  config = adding_config.get_config("lstm_chrono,seq_len=100,variant=hochreiter1997,"
                                    "criterion=hochreiter1997")
  assert (config.task.variant, config.criterion) == ("hochreiter1997", "hochreiter1997")
  assert config.model.chrono_max == 110  # the longest distance: T + T // 10
  config.task.seq_len = 500
  assert config.model.chrono_max == 550
  assert adding_config.get_config("lstm_chrono").task.variant == "le2015"
  assert adding_config.get_config("lstm_chrono").model.chrono_max == 100
  h97 = adding_h97.get_config("gru,seq_len=50")
  assert (h97.task.variant, h97.criterion, h97.model.name, h97.task.seq_len) == (
      "hochreiter1997", "hochreiter1997", "gru", 50)
  validate(h97, num_devices=1)
  for arg in ("learning_cost", "learning_cost_cpu"):
    c = compare.get_config(arg).comparison
    assert c.learning_cost.tasks[:2] == ("adding", "adding_h97")
    assert c.task_configs["adding_h97"].endswith("configs/adding_h97.py")
    assert c.learning_cost.steps["adding_h97"] == c.learning_cost.steps["adding"]


def test_workdir_from_before_variants_resumes_and_variants_do_not_mix(tmp_path):
  from attnlab.train import run_dir
  config = base_config("lstm", "adding", seq_len=10)
  old = run_dir.config_to_json(config)
  del old["task"]["variant"], old["criterion"]
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)
  (tmp_path / "config.json").write_text(json.dumps(old))
  run_dir.check_config_matches(str(tmp_path), config)  # le2015, 'task': what it ran
  config.task.variant = "hochreiter1997"
  with pytest.raises(ValueError, match=r"task.variant: 'le2015' -> 'hochreiter1997'"):
    run_dir.check_config_matches(str(tmp_path), config)
  config.task.variant, config.criterion = "le2015", "hochreiter1997"
  with pytest.raises(ValueError, match=r"criterion: 'task' -> 'hochreiter1997'"):
    run_dir.check_config_matches(str(tmp_path), config)


def test_report_puts_hochreiters_column_beside_their_protocol(tmp_path):
  from attnlab.analysis import report
  seed = dict(seed=0, solved_sequences=6400, censored=False, final_wrong=1, final_sequences=2560)
  points = [dict(task=task, model="lstm", length=100, status="trained", seeds=[seed], median=6400,
                 median_censored=False, cap_sequences=73984, params=1000)
            for task in ("adding", "adding_h97")]
  lines = report.learning_cost_section(
      {"points": points, "seeds": [0], "exponents": {}}, str(tmp_path))
  text = "\n".join(lines)
  today, theirs = text.split("### adding_h97")
  assert report.HOCHREITER_HEADER not in today and report.HOCHREITER_HEADER in theirs
  assert "74,000; wrong 1 of 2560" in theirs and "74,000" not in today
