"""`train_and_evaluate(config, workdir)`: the training loop, as in flax/examples.

One run = one workdir. Starting a run in a workdir that has checkpoints resumes from the latest
(params, optimizer state and the data iterator's position), so a run stopped at any moment, by
SIGTERM (Cloud TPU preemption: a checkpoint is saved before exit) or by a kill, continues where it
was. A finished run is never retrained; raising `num_train_steps` continues it (a warmup_cosine
schedule keeps its length: see `run_dir`). A workdir whose saved config differs in anything but
`config.RESUMABLE_FIELDS` is refused. The best checkpoint is kept in the same orbax manager as the
last ones (`checkpoints`): no moment of a kill leaves it stale.

Solving (`attnlab.train.solving`): at the first evaluation that meets the task's criterion
(`attnlab.tasks.criterion`), or with config.criterion='hochreiter1997' at the first step whose
window of recent training sequences meets it (`attnlab.train.criteria`, the window kept in each
checkpoint's meta), metrics.jsonl gets {"solved_step", "solved_sequences"} and a checkpoint is
saved; with `config.stop_when_solved` the run ends there and counts as finished. Every result
carries solved_step, solved_sequences (None when unsolved) and censored (True: not solved by the
end of the run), and the final_* metrics of `config.final_eval_sequences` and of
`config.eval_lengths` (final_len{L}_*: the test split at seq_len L, for length generalisation).

The host looks at the run only between dispatches of K steps (`attnlab.train.dispatch`: up to the
next log, evaluation or checkpoint, at most config.max_steps_per_dispatch): SIGTERM saves at the
end of the dispatch it arrives in (on several processes: at the dispatch all of them agree on,
`attnlab.train.preemption`); a non-finite step inside one is recorded (or stops the run) at
its own step, as with one step per dispatch.
"""
import contextlib
import math
import signal
import time

import jax
import numpy as np

from attnlab import data, models, tasks, versions
from attnlab.data import on_device as on_device_data
from attnlab.data import prefetch
from attnlab.train import checkpoints as ckpt_lib
from attnlab.train import config as cfg_lib
from attnlab.train import criteria, dispatch, losses, optim, sharding, solving
# stop_requested, stop_threads_on_signal: re-exported for attnlab.comparison
from attnlab.train.preemption import StopSignal, stop_requested, stop_threads_on_signal  # noqa
from attnlab.train.parallel import Parallel
from attnlab.train.metric_writer import MetricWriter
from attnlab.train.run_dir import check_resumable_config, config_to_json
from attnlab.train.workdir_lock import WorkdirLock


class Preempted(Exception):
  """Raised after the checkpoint saved on SIGTERM (preemption) or SIGINT (Ctrl-C), so the process
  exits cleanly; `exit_code` is 128 + the signal number (143 or 130), what launchers expect. On
  several processes every one raises it at the same step (`attnlab.train.preemption`)."""

  def __init__(self, signum: int, step: int, workdirs: list, saved: bool = True):
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
    where = (f"at step {step}: checkpoint saved in {', '.join(workdirs)}" if saved else
             f"before {', '.join(workdirs)} started training")
    super().__init__(f"{name} {where}; rerun the same command to resume")
    self.exit_code, self.step = 128 + signum, step


def eval_split(config, spec_params) -> str:
  """'validation', or 'test' for a real dataset that has no validation split (digits)."""
  try:
    data.common.task_split(config.task.name, spec_params, "validation")
    return "validation"
  except ValueError:
    return "test"


def make_datasets(config, spec_params, split, num_examples=None):
  """The per-host loader of `split` for config.task (evaluation splits: num_examples of them,
  default num_eval_batches x batch_size)."""
  num_examples = num_examples or config.num_eval_batches * config.batch_size
  sizes = {split: num_examples} if split != "train" else {}
  if config.task.num_train:
    sizes["train"] = config.task.num_train
  # With batches made ahead by the trainer's own thread (data.prefetch), grain's reader threads
  # only contend for the GIL: the small models then wait ~2x longer for data.
  threads = {"read_threads": 0} if split == "train" and config.prefetch_batches else {}
  loader, _ = data.make_dataset(
      config.task.name, spec_params, split=split, batch_size=config.batch_size,
      seed=config.data_seed, data_seed=config.data_seed,
      source=config.task.source, data_dir=config.task.data_dir, split_sizes=sizes,
      shard_index=jax.process_index(), shard_count=jax.process_count(), **threads)
  return loader


def eval_batches(config, spec_params) -> list:
  """The host batches of the fixed evaluation split (num_eval_batches of them), read once per run."""
  loader = make_datasets(config, spec_params, eval_split(config, spec_params))
  return [b for _, b in zip(range(config.num_eval_batches), loader)]


def final_batches(config, spec, spec_params, n=None) -> list:
  """The host batches of the final evaluation: n (default config.final_eval_sequences) test
  sequences of config.task with `spec_params`."""
  n = n or config.final_eval_sequences
  try:
    loader = make_datasets(config, spec_params, "test", -(-n // config.batch_size) * config.batch_size)
  except ValueError as e:
    raise ValueError(f"config.final_eval_sequences={n} (read in whole batches of "
                     f"{config.batch_size}): {e}") from None
  return solving.final_batches(config, spec, loader, n)


def _eval_sums(par: Parallel, state, batches, placed: bool = False) -> list:
  """The metric sums of each run over `batches` (host batches, or with `placed` par.batch's)."""
  # Every batch's step is dispatched before any result is read, so the steps run back to back;
  # the sums are then added on the host in batch order (the float32 additions of one at a time).
  params = par.params(state)
  sums = [par.eval_step(params, b if placed else par.batch(b), state.model_state) for b in batches]
  total = None
  for s in jax.device_get(sums):
    total = [losses.add_sums(t, r) for t, r in zip(total or [None] * len(par.seeds), par.per_run(s))]
  return total


def _final_results(par: Parallel, state, config, spec, spec_params, final_data) -> list:
  """Each run's final_* metrics: on `final_data` (config.final_eval_sequences), and at every length
  of config.eval_lengths (final_len{L}_*, on test sequences read now)."""
  out = [{} for _ in par.seeds]
  if final_data is not None:
    for metrics, sums in zip(out, _eval_sums(par, state, final_data)):
      metrics.update(solving.final_metrics(sums))
  for length in config.get("eval_lengths", ()):
    batches = final_batches(config, spec, solving.length_params(spec_params, length),
                            solving.eval_length_sequences(config))
    for metrics, sums in zip(out, _eval_sums(par, state, batches)):
      metrics.update(solving.length_metrics(length, sums))
  return out


def evaluate(par: Parallel, state, config, spec_params, batches=None, placed: bool = False) -> list:
  """Mean metrics over the fixed validation split for each run: [{'eval_loss': ..., ...}].

  `batches`: eval_batches(config, spec_params), when the caller keeps them between evaluations
  (`placed`: each already through par.batch).
  """
  if batches is None:
    batches, placed = eval_batches(config, spec_params), False
  total = _eval_sums(par, state, batches, placed)
  return [{f"eval_{k}": v for k, v in losses.summarize(t).items() if k != "wrong"} for t in total]


class _Run:
  """What belongs to one run of a training program: its workdir, writer, checkpoints, hooks."""

  def __init__(self, config, workdir, hooks):
    self.config, self.workdir, self.hooks = config, workdir, list(hooks)
    ck = config.checkpoint
    self.checkpointer = ckpt_lib.Checkpointer(workdir, ck.keep, ck.best_metric, ck.best_mode,
                                              ck.async_save, config_to_json(config))
    self.writer = None  # opened by open_writer() once the checkpoint is restored
    self.label = None  # names the run in progress lines when several train together
    self.criterion = tasks.criterion(config.task.name, **cfg_lib.task_params(config))
    self.window = criteria.make_window(config)  # hochreiter1997: judged on the training stream
    self.last_eval = {}
    self.solved, self.final, self.done = {}, {}, False  # done: nothing more is written here

  def open_writer(self):
    """The metric writer, its logs cut back to the latest checkpoint (a run refused while
    restoring leaves its workdir untouched)."""
    self.writer = MetricWriter(self.workdir, self.config.num_train_steps,
                               resume_step=self.checkpointer.latest_step(), label=self.label)

  def restore(self, meta: dict):
    """Takes the evaluation, solving and final results of a restored checkpoint's meta."""
    self.last_eval = {k: v for k, v in meta.items() if k.startswith("eval_")}
    self.solved = {k: meta[k] for k in ("solved_step", "solved_sequences") if k in meta}
    self.final = {k: v for k, v in meta.items() if k.startswith("final_")}
    self.done = bool(self.solved) and self.config.stop_when_solved
    if self.window is not None:
      self.window.restore(meta)

  def window_meta(self) -> dict:
    """What a checkpoint's meta keeps of the training window ({} without one)."""
    return self.window.state() if self.window is not None else {}

  def check_solved(self, step: int, eval_metrics, train_sums) -> bool:
    """Records the first step that meets the criterion; True if it is this one. The task's
    criterion reads `eval_metrics` (None: not evaluated at this step); hochreiter1997's window takes
    this step's `train_sums` first."""
    if self.window is not None:
      met = self.window.add(train_sums)
      if step % self.config.log_every == 0:
        self.writer.write(step, {"window_mse": self.window.window_mse(),
                                 "window_wrong": self.window.window_wrong()})
    else:
      met = eval_metrics is not None and self.criterion.met(eval_metrics)
    if self.solved or not met:
      return False
    self.solved = {"solved_step": step, "solved_sequences": step * self.config.batch_size}
    self.writer.write(step, self.solved)
    return True

  def nonfinite(self, step: int, values: dict):
    """Records a non-finite step (values: loss, grad_norm, grad_norm_clipped); with
    on_nonfinite='stop' ends the run with an error."""
    loss, grad_norm = float(values["loss"]), float(values["grad_norm"])
    self.writer.write(step, {"train_loss": loss, "grad_norm": grad_norm,
                             "grad_norm_clipped": float(values["grad_norm_clipped"])})
    if self.config.on_nonfinite == "stop":
      self.checkpointer.close()
      raise FloatingPointError(
          f"non-finite training loss {loss} / gradient norm {grad_norm} at step {step}; the last "
          f"good checkpoint (step {self.checkpointer.latest_step()}) in {self.workdir} is intact. "
          "Set config.on_nonfinite='record' to record the explosion and continue.")

  def result(self) -> dict:
    """The last evaluation, solving and final metrics: what train_and_evaluate returns."""
    return {**self.last_eval, "solved_step": self.solved.get("solved_step"),
            "solved_sequences": self.solved.get("solved_sequences"),
            "censored": not self.solved, **self.final}

  def run_hooks(self, par, state, k, step):
    """Calls each hook(step, host params, workdir) -> scalars on process 0; logs what they return."""
    if not self.hooks:
      return
    params = par.host_params(state, k)
    if jax.process_index() == 0:
      scalars = {}
      for hook in self.hooks:
        scalars.update(hook(step, params, self.workdir) or {})
      self.writer.write(step, scalars)

  def close(self):
    self.checkpointer.close()
    if self.writer is not None:
      self.writer.close()


def train_and_evaluate(config, workdir: str, hooks=()) -> dict:
  """Trains config's model on config's task in `workdir`; returns the last evaluation metrics.

  hooks: callables hook(step, params as NumPy, workdir) -> dict of scalars, run before the first
  step of a new run and at every evaluation (e.g. gradient-flow measurements); what they return is
  logged with the metrics.
  """
  return _train([config], [workdir], [hooks])[0]


def train_seeds(configs: list, workdirs: list, hooks: list = None) -> list:
  """Runs that differ only in `config.POPULATION_FIELDS` (seed, learning rate, warmup and schedule
  length, clip norm, weight decay: a population), trained as one program (vmapped over the runs,
  or looping over them: config.seed_parallelism); one result per run.

  Each run still has its own workdir, config.json, checkpoints, metrics and solved step, exactly as
  if it had been trained alone (with `config.data_seed` shared, it sees the same batches; its
  optimizer state carries its own hyper-parameters: `attnlab.train.optim.make_optimizer`). Runs
  are trained one by one instead when one program does not apply: runs that differ in other fields
  or in the optimizer state's structure (`config.population_key`), several processes or devices,
  pmap, runs that are not at the same step, or seed_parallelism='sequential'.
  """
  hooks = hooks or [()] * len(configs)
  stopped = [i for i, (c, w) in enumerate(zip(configs, workdirs))
             if c.stop_when_solved and "solved_step" in ckpt_lib.latest_meta(w)]
  if 0 < len(stopped) < len(configs):  # each returns at once; the others train together
    rest = [i for i in range(len(configs)) if i not in stopped]
    results = {i: train_and_evaluate(configs[i], workdirs[i], hooks[i]) for i in stopped}
    pick = lambda xs: [xs[i] for i in rest]
    results.update(zip(rest, train_seeds(pick(configs), pick(workdirs), pick(hooks))))
    return [results[i] for i in range(len(configs))]
  base = cfg_lib.population_key(configs[0])
  same_shape = all(cfg_lib.population_key(c) == base for c in configs)
  steps_done = {ckpt_lib.latest_step_in(w) for w in workdirs}
  if (len(configs) == 1 or not same_shape or len(steps_done) > 1 or jax.device_count() > 1
      or configs[0].parallelism != "jit" or cfg_lib.seed_parallelism(configs[0]) == "sequential"):
    return [train_and_evaluate(c, w, h) for c, w, h in zip(configs, workdirs, hooks)]
  return _train(configs, workdirs, hooks)


def _train(configs, workdirs, hooks) -> list:
  """The training loop of one run, or of several seeds vmapped together."""
  with contextlib.ExitStack() as locks:  # each workdir locked until the run ends, however it ends
    return _train_locked(configs, workdirs, hooks, locks)


def _train_locked(configs, workdirs, hooks, locks: contextlib.ExitStack) -> list:
  config = configs[0]
  sharding.maybe_initialize_distributed(config)
  spec, model_config = cfg_lib.validate(config, sharding.data_axis_size(config), jax.process_count())
  for c, w in zip(configs, workdirs):
    locks.enter_context(WorkdirLock(w))  # a second process on the workdir fails here, at once
    check_resumable_config(w, c)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  par = Parallel(config, model, tx, spec, schedule, [c.seed for c in configs],
                 [optim.hyperparams(c.optimizer, c.num_train_steps) for c in configs])
  spec_params = cfg_lib.task_params(config)
  example = tasks.generate(config.task.name, 1, **spec_params)
  example = {k: v for k, v in example.items() if v.dtype != object}
  state, abstract = par.init_state(example)
  on_device = cfg_lib.data_on_device(config)  # the training stream drawn inside the program
  host_iter = None if on_device else iter(make_datasets(config, spec_params, "train"))
  runs = [_Run(c, w, h) for c, w, h in zip(configs, workdirs, hooks)]
  for run in runs:  # progress lines of runs trained together or in threads interleave
    run.label = run_label(run.config, configs)

  restored = [run.checkpointer.restore(abstract) for run in runs]
  sums = dispatch.StepSums(len(runs))  # train sums since each run's last log
  if restored[0] is not None:
    state = par.place_restored([r[0] for r in restored])
    if host_iter is not None:  # the device stream resumes from the step alone
      host_iter.set_state(restored[0][1]["iterator"])
    for k, (run, (_, _, meta)) in enumerate(zip(runs, restored)):
      run.restore(meta)
      sums.restore(k, meta)
  first_step = int(jax.device_get(par.to_save(state).step))
  for run in runs:
    run.open_writer()
    if jax.process_index() == 0:  # what this sitting runs with (versions, device), per start
      versions.record_start(run.workdir, first_step)
    if restored[0] is not None:
      run.writer.note(f"resumed from step {first_step} "
                      f"({ckpt_lib.checkpoint_path(run.workdir, first_step)})")
  if first_step >= config.num_train_steps or all(run.done for run in runs):
    for run in runs:
      run.writer.note("solved already" if run.done else
                      f"finished already; {_how_to_continue(config)}")
      run.close()
    return [run.result() for run in runs]
  final_data = final_batches(config, spec, spec_params) if config.final_eval_sequences else None

  if first_step == 0:
    for k, run in enumerate(runs):
      run.run_hooks(par, state, k, 0)
  eval_data = [par.batch(b) for b in eval_batches(config, spec_params)]  # placed once, reused
  # Host batches are read `prefetch_batches` + one dispatch ahead, in a thread that works while the
  # steps compute; get_state() is the position of the last batch consumed. Device batches are drawn
  # from the step alone (config.data.on_device): get_state() is that step.
  max_steps = config.get("max_steps_per_dispatch", dispatch.DEFAULT_MAX_STEPS)
  ahead = config.prefetch_batches and config.prefetch_batches + max_steps
  if on_device:
    stream = (config.task.name, spec_params, config.batch_size, config.data_seed,
              jax.process_index(), jax.process_count())
    draw = on_device_data.make_k_batches_fn(*stream)
    batch_fn = on_device_data.make_batch_fn(*stream)
    # hochreiter1997: K-step programs that end themselves where the rule may be met
    until = (par.fused_train_steps_until(batch_fn, max_steps) if dispatch.EARLY_EXIT
             and all(run.window is not None for run in runs) else None)
    fused = par.fused_train_steps(batch_fn, max_steps) if until is None else None
    source = (dispatch.DeviceStepsUntil(until, first_step) if until is not None else
              dispatch.DeviceSteps(fused, first_step) if fused is not None else
              dispatch.DeviceBatches(draw, par.place_stacked, first_step))
  else:
    source = dispatch.HostBatches(prefetch.Prefetcher(host_iter, ahead), par.stacked_batches)
  next_eval = solving.next_eval_step(first_step, config)
  t0, step = time.time(), first_step
  with StopSignal() as stop, contextlib.closing(source):
    while step < config.num_train_steps:
      # Vmapped seeds that are done keep being updated with the others, but nothing of theirs
      # is logged or saved any more: their workdirs end at their solved step.
      early = isinstance(source, dispatch.DeviceStepsUntil)
      k_steps, metrics = dispatch.dispatch_length(step, configs, next_eval, early), []
      if early:  # it may end before k_steps: at the first step where a rule may be met
        window, mse = criteria.device_window([run.window for run in runs], par.vmapped)
        watch = np.array([not (run.done or run.solved) for run in runs])
        state, rows, k_steps = source.train(state, k_steps, window,
                                            watch if par.vmapped else watch[0], mse)
        metrics = dispatch.first_rows(par.per_run_steps([rows]), k_steps)
      elif isinstance(source, dispatch.DeviceSteps):  # one program, whatever k_steps
        state, rows = source.train(state, k_steps)
        metrics = dispatch.first_rows(par.per_run_steps([rows]), k_steps)
      else:
        for n in dispatch.chunks(k_steps, max_steps):
          state, chunk = par.train_steps(state, source.next_k(n))
          metrics.append(chunk)
        # One read of the K steps' metrics: it waits for them (several local processes can
        # deadlock otherwise).
        metrics = par.per_run_steps(metrics)
      active = [k for k, run in enumerate(runs) if not run.done]
      for i, k in dispatch.nonfinite_steps(metrics, active):  # the last step: in _after_step
        runs[k].nonfinite(step + 1 + i, {name: metrics[name][i, k] for name in dispatch.CHECKED})
      sums.add(metrics["sums"])
      step += k_steps
      last = step == config.num_train_steps
      evaluated = step == next_eval or last
      if step == next_eval:
        next_eval = solving.next_eval_step(step, config)
      evals = evaluate(par, state, config, spec_params, eval_data, placed=True) if evaluated else None
      solved_now = []
      for k in active:  # the windows take the steps before the last one, in step order
        _window_steps(runs[k], k, step - k_steps + 1, metrics["sums"])
      for k in active:
        _after_step(runs[k], par, state, k, step, first_step, t0, metrics, sums, evals and evals[k])
        step_sums = {name: v[-1, k] for name, v in metrics["sums"].items()}
        if runs[k].check_solved(step, evals and evals[k], step_sums):
          solved_now.append(k)
      ending = [k for k in active if last or (k in solved_now and runs[k].config.stop_when_solved)]
      if ending and (final_data is not None or config.get("eval_lengths")):
        finals = _final_results(par, state, config, spec, spec_params, final_data)
        for k in ending:
          runs[k].final = finals[k]
          runs[k].writer.write(step, runs[k].final)
      stopping = stop.reached()  # every process, every dispatch: the same answer on all of them
      regular = step % config.checkpoint_every == 0 or last or stopping
      saving = active if regular else solved_now
      if saving:
        data_state = {"iterator": source.get_state()}
        for k in saving:
          run, start = runs[k], time.time()
          meta = {**(run.last_eval if evaluated else {}), **run.solved, **run.final,
                  **run.window_meta(), **sums.state(k)}
          run.checkpointer.save(step, par.to_save(state, k), data_state, meta or None)
          run.writer.write(step, {"checkpoint_blocked_s": time.time() - start})
      for k in ending:
        runs[k].done = True
        solved = runs[k].solved.get("solved_step")
        runs[k].writer.progress(step, first_step, "not solved" if solved is None
                                else f"solved at step {solved}", keep=True)
      if stopping:
        for run in runs:
          run.close()
        raise Preempted(stopping, step, workdirs)
      if all(run.done for run in runs):
        break
  for run in runs:
    run.close()
  return [run.result() for run in runs]


def run_label(config, population=()) -> str:
  """'lstm seed 1': the model and seed of a run, as its progress and result lines name it (the
  config's model word where it has one: 'transformer_window0 seed 1', not its registry model); in a
  `population` (its configs), also each other population field that differs among them
  ('lstm seed 1 learning_rate=0.01')."""
  label = f"{config.get('model_variant') or config.model.name} seed {config.seed}"
  for field in cfg_lib.POPULATION_FIELDS[1:]:
    section, key = field.split(".")
    if len({repr(c[section][key]) for c in population}) > 1:
      label += f" {key}={config[section][key]}"
  return label


def _how_to_continue(config) -> str:
  length = optim.schedule_length(config.optimizer, config.num_train_steps)
  if length is not None and length <= config.num_train_steps:
    return f"its warmup_cosine schedule ended at step {length} (a longer one needs a new workdir)"
  return "raise num_train_steps to continue"


def _window_steps(run: _Run, k: int, first: int, sums):
  """hochreiter1997: run k's window takes the sums of a dispatch's steps first, first + 1, ...,
  all but the last (sums: {name: (steps, runs, 2)}). The dispatch ends at the first step where the
  rule may be met (dispatch.fused_steps_until), so none of them meets it."""
  if run.window is None:
    return
  for i in range(next(iter(sums.values())).shape[0] - 1):
    if run.check_solved(first + i, None, {name: v[i, k] for name, v in sums.items()}):
      raise RuntimeError(f"{run.workdir}: the hochreiter1997 rule was met at step {first + i}, "
                         "inside a dispatch the device did not end there "
                         "(attnlab.train.criteria.DEVICE_MARGIN); please report this")


def _after_step(run: _Run, par, state, k, step, first_step, t0, metrics, sums, eval_metrics):
  """Run k's bookkeeping at the last step of a dispatch: its non-finite check, logging,
  evaluation results, hooks. metrics: the dispatch's (steps, runs) arrays; sums: the StepSums."""
  config = run.config
  last = {name: metrics[name][-1, k] for name in dispatch.CHECKED + ("learning_rate",)}
  if not (math.isfinite(last["loss"]) and math.isfinite(last["grad_norm"])):
    run.nonfinite(step, last)
  if step % config.log_every == 0 or step == config.num_train_steps:
    summary = losses.summarize(sums.of(k))
    rate = (step - first_step) / max(time.time() - t0, 1e-9)
    run.writer.write(step, {"train_loss": summary["loss"], "train_score": summary["score"],
                            "grad_norm": float(last["grad_norm"]),
                            "grad_norm_clipped": float(last["grad_norm_clipped"]),
                            "learning_rate": float(last["learning_rate"]),
                            "steps_per_sec": rate})
    run.writer.progress(step, first_step, f"loss {summary['loss']:.4f}")
    sums.reset(k)
  if eval_metrics is not None:
    run.last_eval = eval_metrics
    run.writer.write(step, eval_metrics)
    run.run_hooks(par, state, k, step)
    run.writer.progress(step, first_step, " ".join(f"{n} {v:.4f}" for n, v in eval_metrics.items()),
                        keep=True)
