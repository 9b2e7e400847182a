"""K training steps per dispatch (attnlab.train.dispatch): where dispatches end, the host-side sums,
and runs of K > 1 that are killed inside a dispatch, resumed, or explode, against K = 1."""
import os
import signal

import jax
import numpy as np
import pytest

import attnlab
from attnlab.train import Preempted, base_config, criteria, dispatch, metric_writer
from attnlab.train import train_and_evaluate
from attnlab.train import parallel as parallel_lib
from attnlab.train.metric_writer import read_jsonl

TIMING = ("steps_per_sec", "checkpoint_blocked_s")


def k_step_config(steps=20, max_steps=50, model="lstm", on_device=False):
  """A tiny run whose dispatches are K > 1 steps: logs every 5, evaluations every 10,
  checkpoints at 20 (the end) only; its training stream from the host pipeline, or `on_device`."""
  config = base_config(model, "adding", seq_len=12)
  config.data.on_device = on_device
  config.model.hidden_size = 8
  config.num_train_steps, config.batch_size, config.num_eval_batches = steps, 8, 1
  config.log_every, config.eval_every, config.checkpoint_every = 5, 10, 20
  config.max_steps_per_dispatch = max_steps
  config.checkpoint.async_save = False
  return config


def rows(workdir) -> list:
  """metrics.jsonl without timings (and without rows that held only timings)."""
  out = []
  for row in read_jsonl(os.path.join(workdir, "metrics.jsonl")):
    row = {k: v for k, v in row.items() if k not in TIMING}
    if set(row) != {"step"}:
      out.append(row)
  return out


def test_dispatch_ends_at_the_next_log_eval_checkpoint_end_or_bound():
  config = k_step_config(steps=23, max_steps=7)
  config.log_every, config.checkpoint_every = 5, 4
  assert dispatch.dispatch_length(0, [config], next_eval=10) == 4  # checkpoint at 4
  assert dispatch.dispatch_length(4, [config], next_eval=10) == 1  # log at 5
  assert dispatch.dispatch_length(8, [config], next_eval=9) == 1  # evaluation at 9
  assert dispatch.dispatch_length(20, [config], next_eval=30) == 3  # end of run at 23
  config.log_every = config.checkpoint_every = 100
  assert dispatch.dispatch_length(0, [config], next_eval=100) == 7  # the bound
  other = k_step_config(steps=23, max_steps=7)
  other.log_every = 3  # several runs: the earliest log of any
  assert dispatch.dispatch_length(0, [config, other], next_eval=100) == 3
  config.criterion = "hochreiter1997"  # judged at every step
  assert dispatch.dispatch_length(0, [config], next_eval=100) == 1
  # ... unless the dispatch ends itself where the rule may be met (dispatch.fused_steps_until)
  assert dispatch.dispatch_length(0, [config], next_eval=100, early_exit=True) == 7


def test_a_dispatch_runs_as_few_program_lengths():
  assert dispatch.chunks(37, 50) == [8, 8, 8, 8, 1, 1, 1, 1, 1]
  assert dispatch.chunks(120, 50) == [50, 50, 8, 8, 1, 1, 1, 1]
  assert dispatch.chunks(1, 50) == [1] and dispatch.chunks(7, 5) == [5, 1, 1]
  for length in range(1, 200):
    assert sum(dispatch.chunks(length, 50)) == length
  lengths = {n for length in range(1, 200) for n in dispatch.chunks(length, 50)}
  assert lengths == {50, 8, 1}  # three programs whatever the schedule


def test_step_sums_add_in_step_order_and_reset_per_run():
  rng = np.random.default_rng(0)
  steps = rng.normal(size=(2, 6, 3, 2)).astype(np.float32)  # two dispatches, K=6, 3 runs
  sums = dispatch.StepSums(3)
  expected = np.zeros((3, 2), np.float32)
  for d in range(2):
    sums.add({"loss": steps[d]})
    for i in range(6):
      expected = expected + steps[d, i]  # float32, one step at a time
  np.testing.assert_array_equal(sums.of(1)["loss"], expected[1])
  saved = sums.state(1)
  sums.reset(1)
  assert sums.state(1) == {} and not sums.of(1)["loss"].any()
  np.testing.assert_array_equal(sums.of(2)["loss"], expected[2])  # the others keep theirs
  resumed = dispatch.StepSums(3)
  resumed.restore(0, saved)
  resumed.add({"loss": np.zeros((1, 3, 2), np.float32)})
  np.testing.assert_array_equal(resumed.of(0)["loss"], expected[1])  # exact through JSON


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("straight") / "run")
  train_and_evaluate(k_step_config(), workdir)
  return workdir


@pytest.fixture(scope="module")
def straight_on_device(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("straight_on_device") / "run")
  train_and_evaluate(k_step_config(on_device=True), workdir)
  return workdir


def sigterm_during_dispatch(monkeypatch, number: int):
  """SIGTERM while the `number`-th dispatch computes: after it is queued, before its metrics
  are read."""
  original, calls = parallel_lib.Parallel.per_run_steps, []

  def read_after_sigterm(self, metrics):
    calls.append(1)
    if len(calls) == number:
      os.kill(os.getpid(), signal.SIGTERM)
    return original(self, metrics)

  monkeypatch.setattr(parallel_lib.Parallel, "per_run_steps", read_after_sigterm)
  return lambda: monkeypatch.setattr(parallel_lib.Parallel, "per_run_steps", original)


@pytest.mark.parametrize("max_steps,dispatch_number,saved_at", [
    (50, 2, 10),  # dispatches 1-5, 6-10, ...: killed in the second, saved at 10 (no checkpoint step)
    # 1-3, 4-5, 6-8, ...: saved at 8, between two logs; resumed with K up to 50
    pytest.param(3, 3, 8, marks=pytest.mark.slow),
])
def test_killed_inside_a_dispatch_resumes_bit_identical(tmp_path, monkeypatch, straight, max_steps,
                                                       dispatch_number, saved_at):
  workdir = str(tmp_path / "killed")
  restore = sigterm_during_dispatch(monkeypatch, dispatch_number)
  with pytest.raises(Preempted, match=f"SIGTERM at step {saved_at}"):
    train_and_evaluate(k_step_config(max_steps=max_steps), workdir)
  restore()
  assert attnlab.load_run(workdir, "last").step == saved_at
  train_and_evaluate(k_step_config(), workdir)  # max_steps_per_dispatch may change on resume
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(straight, "last").params,
               attnlab.load_run(workdir, "last").params)
  assert rows(workdir) == rows(straight)
  assert [r["step"] for r in rows(straight) if "train_loss" in r] == [5, 10, 15, 20]


@pytest.mark.parametrize("dispatch_number,saved_at", [(1, 5),
                                                     pytest.param(3, 15, marks=pytest.mark.slow)])
def test_the_device_stream_killed_anywhere_resumes_bit_identical(tmp_path, monkeypatch,
                                                                 straight_on_device, straight,
                                                                 dispatch_number, saved_at):
  """config.data.on_device=True: batches drawn inside the program from the step alone; a run
  killed inside any dispatch resumes to the run trained straight, which sees other data than the
  host pipeline's."""
  workdir = str(tmp_path / "killed")
  restore = sigterm_during_dispatch(monkeypatch, dispatch_number)
  with pytest.raises(Preempted, match=f"SIGTERM at step {saved_at}"):
    train_and_evaluate(k_step_config(max_steps=5, on_device=True), workdir)
  restore()
  train_and_evaluate(k_step_config(on_device=True), workdir)
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(straight_on_device, "last").params,
               attnlab.load_run(workdir, "last").params)
  assert rows(workdir) == rows(straight_on_device)
  assert rows(straight_on_device) != rows(straight)  # another stream: the device's own


def test_k_steps_equal_one_step_dispatches(tmp_path, straight):
  one = str(tmp_path / "one")
  train_and_evaluate(k_step_config(max_steps=1), one)
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(straight, "last").params,
               attnlab.load_run(one, "last").params)
  assert rows(one) == rows(straight)


def exploding(max_steps: int, on_nonfinite: str):
  config = k_step_config(steps=12, max_steps=max_steps, model="rnn")
  config.optimizer.update(name="sgd", learning_rate=1e12, clip_norm=0.0, momentum=0.0)
  config.on_nonfinite = on_nonfinite
  return config


@pytest.mark.parametrize("on_nonfinite", ["stop", "record"])
def test_nonfinite_step_inside_a_dispatch_is_handled_as_with_one_step(tmp_path, on_nonfinite):
  outcomes = []
  for max_steps in (1, 50):
    workdir = str(tmp_path / f"k{max_steps}")
    try:
      train_and_evaluate(exploding(max_steps, on_nonfinite), workdir)
      outcomes.append(("finished", rows(workdir)))
    except FloatingPointError as e:
      outcomes.append((str(e).replace(f"k{max_steps}", "k"), rows(workdir)))
  assert str(outcomes[0]) == str(outcomes[1])  # the same error at the same step; the same logs
  bad = [r for r in outcomes[0][1] if "train_loss" in r and not np.isfinite(r["train_loss"])]
  assert bad and bad[0]["step"] % 5  # non-finite at a step inside a dispatch, logged there


@pytest.mark.slow  # ~10 s; test_vmap_seeds covers vmapped seeds in the default suite
def test_vmapped_seeds_in_k_step_dispatches_resume_bit_identical(tmp_path, monkeypatch):
  from attnlab.train import train_seeds

  def configs():
    out = [k_step_config(steps=10), k_step_config(steps=10)]
    out[1].seed = 1
    for config in out:
      config.seed_parallelism = "map"
    return out

  straight = [str(tmp_path / f"straight{i}") for i in range(2)]
  train_seeds(configs(), straight)
  killed = [str(tmp_path / f"killed{i}") for i in range(2)]
  restore = sigterm_during_dispatch(monkeypatch, 1)  # in steps 1-5: saved at 5 for both
  with pytest.raises(Preempted, match="SIGTERM at step 5"):
    train_seeds(configs(), killed)
  restore()
  train_seeds(configs(), killed)
  for a, b in zip(straight, killed):
    jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(a, "last").params,
                 attnlab.load_run(b, "last").params)
    assert rows(a) == rows(b)
    assert [r["step"] for r in rows(a) if "train_loss" in r] == [5, 10]
  assert rows(straight[0]) != rows(straight[1])  # each seed logs its own metrics



def test_one_program_per_run_equals_chunked_programs(tmp_path, monkeypatch, straight_on_device):
  """The device stream's dispatches as one program of a dynamic trip count (dispatch.fused_steps,
  batches drawn inside) train and log exactly what chunks fed by separately drawn batches
  (DeviceBatches) do, and a run compiles one train program whatever its dispatch lengths."""
  programs = []
  original = parallel_lib.Parallel.fused_train_steps

  def kept(self, batch_fn, max_steps):
    programs.append(original(self, batch_fn, max_steps))
    return programs[-1]

  def config():
    c = k_step_config(on_device=True)
    c.log_every = 3  # dispatches of 3, 3, 3, 1 (evaluation at 10), 2, 3, 3, 2 steps
    return c

  monkeypatch.setattr(parallel_lib.Parallel, "fused_train_steps", kept)
  fused = str(tmp_path / "fused")
  train_and_evaluate(config(), fused)
  assert programs[0]._cache_size() == 1
  monkeypatch.setattr(parallel_lib.Parallel, "fused_train_steps", lambda *a: None)
  chunked = str(tmp_path / "chunked")
  train_and_evaluate(config(), chunked)
  assert rows(fused) == rows(chunked)
  assert [r["step"] for r in rows(fused) if "train_loss" in r] == [3, 6, 9, 12, 15, 18, 20]
  for workdir in (fused, chunked):  # log_every changes no parameter
    jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(straight_on_device, "last").params,
                 attnlab.load_run(workdir, "last").params)


def _counted_step(calls):
  """A train step of a small state (step, params, a weakly typed scale) that counts its traces."""

  def train_step(state, batch):
    calls.append(1)
    params = state["params"] - state["scale"] * jax.numpy.tanh(batch["x"].T @ batch["x"] @ state["params"])
    return {**state, "step": state["step"] + 1, "params": params}, {"loss": jax.numpy.sum(params)}

  state = {"step": np.int32(0), "params": np.eye(3, dtype=np.float32), "scale": 0.5}
  return train_step, state


def test_the_dispatched_programs_trace_the_step_once_and_build_the_same_program():
  """fused_steps traces its step (batch drawn, then trained on) once, not once for the metric
  rows' shapes and again in the loop body; scan_steps traces it once for every program length; and
  the replayed step (dispatch.traced_once) is the jaxpr tracing the step builds, so the compiled
  programs and their numbers are the ones the step traced in place gives."""
  batch_fn = lambda step: {"x": jax.numpy.full((2, 3), step, jax.numpy.float32) / 7}
  calls, draws = [], []
  train_step, state = _counted_step(calls)
  fused = jax.jit(dispatch.fused_steps(train_step, lambda s: draws.append(1) or batch_fn(s), 4))
  fused_state, rows = fused(state, np.int32(1), np.int32(3))
  assert len(calls) == 1 and len(draws) == 1  # before: 2 and 2 (eval_shape, then the body)
  expected = state  # the steps traced in place, one by one
  for step in (1, 2, 3):
    expected, metrics = jax.jit(train_step)(expected, batch_fn(np.int32(step)))
    np.testing.assert_array_equal(rows["loss"][step - 1], metrics["loss"])
  np.testing.assert_array_equal(fused_state["params"], expected["params"])
  assert rows["loss"].shape == (4,) and rows["loss"][3] == 0

  calls.clear()
  train_step, state = _counted_step(calls)  # a new function: jax keeps traces per function
  multi = jax.jit(dispatch.scan_steps(train_step))
  for k in (1, 2, 3):
    multi(state, {"x": np.ones((k, 2, 3), np.float32)})
  assert len(calls) == 1  # before: one trace per program length
  traced = dispatch.traced_once(train_step)
  args = (state, {"x": np.ones((2, 3), np.float32)})
  assert str(jax.make_jaxpr(traced)(*args)) == str(jax.make_jaxpr(train_step)(*args))
  assert traced.__name__ == "train_step"  # jit_train_step: the persistent cache key is unchanged



def test_dispatches_end_at_the_first_step_a_watched_window_may_meet_the_rule():
  """fused_steps_until on a stand-in step whose metric sums come from a table (3 runs, a 4-step
  window, batch 8): dispatches of up to 10 steps, each starting from the host windows, end exactly
  after the first step at which a watched run's window meets the rule within DEVICE_MARGIN (float64
  NumPy, from the rule's definition), so the host windows meet it only at a dispatch's last step;
  the unwatched run's window does not end them."""
  rng, runs, size, batch, total, threshold = np.random.default_rng(0), 3, 4, 8, 120, 0.05
  sq = (rng.uniform(0, 0.09, (total + 1, runs)) * batch).astype(np.float32)
  wrong = (rng.random((total + 1, runs)) < 0.1).astype(np.float32)
  counts = np.full((total + 1, runs), batch, np.float32)
  watch = np.array([True, False, True])

  def train_step(state, batch_):
    i, table = batch_["i"], {name: jax.numpy.asarray(v) for name, v in
                             (("sq", sq), ("wrong", wrong), ("counts", counts))}
    sums = {"mse": jax.numpy.stack([table["sq"][i], table["counts"][i]], -1),
            "wrong": jax.numpy.stack([table["wrong"][i], table["counts"][i]], -1)}
    return {"step": state["step"] + 1}, {"loss": table["sq"][i].sum(), "sums": sums}

  program = jax.jit(dispatch.fused_steps_until(train_step, lambda step: {"i": step}, 10))
  windows = [criteria.TrainingWindow(batch, size * batch, threshold) for _ in range(runs)]
  state, step, ends, unwatched_met = {"step": np.int32(0)}, 0, [], []
  while step < total:
    window, mse = criteria.device_window(windows, vmapped=True)
    n = min(10, total - step)
    state, rows, ran = program(state, np.int32(step + 1), np.int32(n), window, watch, mse)
    ran = int(ran)
    assert 1 <= ran <= n and int(state["step"]) == step + ran
    np.testing.assert_array_equal(rows["sums"]["mse"][:ran, :, 0], sq[step + 1:step + 1 + ran])
    assert not np.any(rows["loss"][ran:])  # the rows of steps not run: zeros
    for i in range(step + 1, step + ran + 1):
      near = []
      for k, w in enumerate(windows):
        w.add({"mse": np.float32([sq[i, k], batch]), "wrong": np.float32([wrong[i, k], batch])})
        q, c, bad = np.sum(np.array(w.entries, np.float64), axis=0)
        near.append(len(w.entries) == size and bad == 0
                    and q < threshold * (1 + criteria.DEVICE_MARGIN) * c)
        if w.met() and not watch[k]:
          unwatched_met.append(i)
        assert not (w.met() and watch[k]) or i == step + ran  # met only at a dispatch's end
      if i < step + ran or ran < n:  # ended after the first such step, and only there
        assert any(near[k] for k in np.flatnonzero(watch)) == (i == step + ran)
    ends.append(step + ran)
    step += ran
  early = [e for e in ends if e % 10]
  assert len(early) >= 3 and set(unwatched_met) - set(ends)  # both cases occur in the table
