"""`train_and_evaluate(config, workdir)`: the training loop, as in flax/examples.

One run = one workdir. Starting a run in a workdir that has checkpoints resumes from the latest
(params, optimizer state and the data iterator's position), so a run stopped at any moment, by
SIGTERM (Cloud TPU preemption: a checkpoint is saved before exit) or by a kill, continues where it
was. A finished run is never retrained; raising `num_train_steps` continues it. A workdir whose
saved config differs in anything but `config.RESUMABLE_FIELDS` is refused.
"""
import contextlib
import functools
import math
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import jax_utils

from attnlab import data, models, tasks
from attnlab.data import prefetch
from attnlab.train import checkpoints as ckpt_lib
from attnlab.train import config as cfg_lib
from attnlab.train import losses, optim, run_dir, sharding, steps, vmap_seeds
from attnlab.train.metric_writer import MetricWriter
from attnlab.train.run_dir import check_resumable_config, config_to_json


class Preempted(Exception):
  """Raised after a SIGTERM-triggered checkpoint, so the process exits cleanly."""


@contextlib.contextmanager
def _sigterm_flag():
  """Yields a dict whose 'set' becomes True on SIGTERM (only installable in the main thread)."""
  flag = {"set": False}
  previous = None
  try:
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.update(set=True))
  except ValueError:  # not the main thread: preemption handling is the caller's business
    pass
  try:
    yield flag
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


def eval_split(config, spec_params) -> str:
  """'validation', or 'test' for a real dataset that has no validation split (digits)."""
  try:
    data.common.task_split(config.task.name, spec_params, "validation")
    return "validation"
  except ValueError:
    return "test"


def make_datasets(config, spec_params, split):
  """The per-host loader of `split` for config.task."""
  sizes = {split: config.num_eval_batches * config.batch_size} if split != "train" else {}
  if config.task.num_train:
    sizes["train"] = config.task.num_train
  # With batches made ahead by the trainer's own thread (data.prefetch), grain's reader threads
  # only contend for the GIL: the small models then wait ~2x longer for data.
  threads = {"read_threads": 0} if split == "train" and config.prefetch_batches else {}
  loader, _ = data.make_dataset(
      config.task.name, spec_params, split=split, batch_size=config.batch_size,
      seed=config.data_seed,
      source=config.task.source, data_dir=config.task.data_dir, split_sizes=sizes,
      shard_index=jax.process_index(), shard_count=jax.process_count(), **threads)
  return loader


class Parallel:
  """The jit-with-Mesh path, the pmap path, or K seeds vmapped on one device, behind one interface.

  With several `seeds` the state carries a leading seed axis (`attnlab.train.vmap_seeds`): every
  seed sees the same batches, so seed k follows the run it would have had on its own.
  """

  def __init__(self, config, model, tx, spec, schedule, seeds=None):
    self.pmap = config.parallelism == "pmap"
    self.seeds = list(seeds) if seeds is not None else [config.seed]
    self.vmapped = len(self.seeds) > 1
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
    kw = dict(dtype=dtype, label_smoothing=config.label_smoothing)
    self.model, self.tx, self.spec = model, tx, spec
    if self.vmapped:
      self.train_step = jax.jit(vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule,
                                                                   self.seeds, **kw),
                                donate_argnums=0)
      self.eval_step = jax.jit(jax.vmap(steps.make_eval_step(model, spec, dtype=dtype),
                                        in_axes=(0, None, 0)))
      return
    if self.pmap:
      self.train_step = jax.pmap(steps.make_train_step(model, tx, spec, schedule, axis_name="batch",
                                                       seed=config.seed, **kw),
                                 axis_name="batch", donate_argnums=0)
      self.eval_step = jax.pmap(steps.make_eval_step(model, spec, dtype=dtype, axis_name="batch"),
                                axis_name="batch")
      return
    self.mesh = sharding.make_mesh(config)
    self.rules = config.logical_axis_rules
    self._train_fn = steps.make_train_step(model, tx, spec, schedule, seed=config.seed, **kw)
    self._eval_fn = steps.make_eval_step(model, spec, dtype=dtype)

  def init_state(self, example):
    """(state placed on devices, abstract state of one run, with shardings, for restoring)."""
    init = functools.partial(steps.create_state, self.model, self.tx, self.spec)
    rng = jax.random.PRNGKey(self.seeds[0])
    abstract = jax.eval_shape(init, rng, example)
    if self.vmapped:
      return vmap_seeds.init_states(self.model, self.tx, self.spec, self.seeds, example), \
          _on_device(abstract)
    if self.pmap:
      return jax_utils.replicate(jax.jit(init)(rng, example)), _on_device(abstract)
    specs = steps.TrainState(step=jax.sharding.PartitionSpec(),
                             params=sharding.param_specs(abstract.params, self.rules, self.mesh),
                             opt_state=sharding.param_specs(abstract.opt_state, self.rules, self.mesh),
                             model_state=sharding.param_specs(abstract.model_state, self.rules,
                                                              self.mesh))
    self.state_shardings = sharding.shardings(specs, self.mesh)
    state = jax.jit(init, out_shardings=self.state_shardings)(rng, example)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, self.state_shardings)
    batch = sharding.batch_sharding(self.mesh)
    self.train_step = jax.jit(self._train_fn, in_shardings=(self.state_shardings, batch),
                              out_shardings=(self.state_shardings, None), donate_argnums=0)
    self.eval_step = jax.jit(self._eval_fn, in_shardings=(self.state_shardings.params, batch,
                                                           self.state_shardings.model_state))
    return state, abstract

  def place_restored(self, states: list):
    """The restored state of every run (one per seed) placed for training."""
    if self.vmapped:
      return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    return jax_utils.replicate(states[0]) if self.pmap else states[0]

  def to_save(self, state, k: int = 0):
    """Run k's state, ready for its checkpoint."""
    if self.vmapped:
      return jax.tree.map(lambda x: x[k], state)
    return jax.device_get(jax_utils.unreplicate(state)) if self.pmap else state

  def batch(self, local):
    if self.vmapped:
      return jax.tree.map(jnp.asarray, local)
    return sharding.split_for_pmap(local) if self.pmap else sharding.global_batch(local, self.mesh)

  def params(self, state):
    return state.params

  def host_params(self, state, k: int = 0):
    """Run k's parameters as NumPy arrays on every host (a collective when there are several)."""
    if self.vmapped:
      return jax.device_get(jax.tree.map(lambda x: x[k], state.params))
    params = jax_utils.unreplicate(state.params) if self.pmap else state.params
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      return multihost_utils.process_allgather(params, tiled=True)
    return jax.device_get(params)

  def per_run(self, metrics) -> list:
    """Step metrics of each run: [metrics] or, vmapped, one slice per seed."""
    if self.vmapped:
      return [jax.tree.map(lambda x: x[k], metrics) for k in range(len(self.seeds))]
    return [jax_utils.unreplicate(metrics) if self.pmap else metrics]


def _on_device(abstract):
  """Restore target on the first local device (pmap replicates it, the vmapped path stacks it)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)


def eval_batches(config, spec_params) -> list:
  """The host batches of the fixed evaluation split (num_eval_batches of them), read once per run."""
  loader = make_datasets(config, spec_params, eval_split(config, spec_params))
  return [b for _, b in zip(range(config.num_eval_batches), loader)]


def evaluate(par: Parallel, state, config, spec_params, batches=None) -> list:
  """Mean metrics over the fixed validation split for each run: [{'eval_loss': ..., ...}].

  `batches`: eval_batches(config, spec_params), when the caller keeps them between evaluations.
  """
  total = None
  for local in eval_batches(config, spec_params) if batches is None else batches:
    sums = par.eval_step(par.params(state), par.batch(local), state.model_state)
    total = [losses.add_sums(t, s) for t, s in zip(total or [None] * len(par.seeds),
                                                    par.per_run(sums))]
  return [{f"eval_{k}": v for k, v in losses.summarize(t).items()} for t in total]


class _Run:
  """What belongs to one run of a training program: its workdir, writer, checkpoints, hooks."""

  def __init__(self, config, workdir, hooks):
    self.config, self.workdir, self.hooks = config, workdir, list(hooks)
    ck = config.checkpoint
    self.checkpointer = ckpt_lib.Checkpointer(workdir, ck.keep, ck.best_metric, ck.best_mode,
                                              ck.async_save, config_to_json(config))
    self.writer = MetricWriter(workdir, config.num_train_steps)
    self.train_sums, self.last_eval = None, {}

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
    self.writer.close()


def train_and_evaluate(config, workdir: str, hooks=()) -> dict:
  """Trains config's model on config's task in `workdir`; returns the last evaluation metrics.

  hooks: callables hook(step, params as NumPy, workdir) -> dict of scalars, run before the first
  step of a new run and at every evaluation (e.g. gradient-flow measurements); what they return is
  logged with the metrics.
  """
  return _train([config], [workdir], [hooks])[0]


def train_seeds(configs: list, workdirs: list, hooks: list = None) -> list:
  """Runs that differ only in `seed`, trained as one vmapped program; one result per run.

  Each run still has its own workdir, checkpoints and metrics, exactly as if it had been trained
  alone (with `config.data_seed` shared, it sees the same batches). Runs are trained one by one
  instead when vmapping does not apply: several processes or devices, pmap, or runs that are not
  at the same step.
  """
  hooks = hooks or [()] * len(configs)
  base = _without_seed(configs[0])
  same_shape = all(_without_seed(c) == base for c in configs)
  steps_done = {ckpt_lib.latest_step_in(w) for w in workdirs}
  if (len(configs) == 1 or not same_shape or len(steps_done) > 1 or jax.device_count() > 1
      or configs[0].parallelism != "jit"):
    return [train_and_evaluate(c, w, h) for c, w, h in zip(configs, workdirs, hooks)]
  return _train(configs, workdirs, hooks)


def _without_seed(config) -> dict:
  flat = run_dir.flatten(config_to_json(config))
  flat.pop("seed")
  return {k: v for k, v in flat.items() if k not in cfg_lib.RESUMABLE_FIELDS}


def _train(configs, workdirs, hooks) -> list:
  """The training loop of one run, or of several seeds vmapped together."""
  config = configs[0]
  sharding.maybe_initialize_distributed(config)
  spec, model_config = cfg_lib.validate(config, sharding.data_axis_size(config), jax.process_count())
  for c, w in zip(configs, workdirs):
    check_resumable_config(w, c)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  par = Parallel(config, model, tx, spec, schedule, [c.seed for c in configs])
  spec_params = cfg_lib.task_params(config)
  example = tasks.generate(config.task.name, 1, **spec_params)
  example = {k: v for k, v in example.items() if v.dtype != object}
  state, abstract = par.init_state(example)
  host_iter = iter(make_datasets(config, spec_params, "train"))
  runs = [_Run(c, w, h) for c, w, h in zip(configs, workdirs, hooks)]

  restored = [run.checkpointer.restore(abstract) for run in runs]
  if restored[0] is not None:
    state = par.place_restored([r[0] for r in restored])
    host_iter.set_state(restored[0][1]["iterator"])
    for run, (_, _, meta) in zip(runs, restored):
      run.last_eval = {k: v for k, v in meta.items() if k.startswith("eval_")}
  first_step = int(jax.device_get(par.to_save(state).step))
  if first_step >= config.num_train_steps:
    for run in runs:
      run.writer.progress(first_step, first_step, "finished already; raise num_train_steps to continue")
      run.close()
    return [run.last_eval for run in runs]

  if first_step == 0:
    for k, run in enumerate(runs):
      run.run_hooks(par, state, k, 0)
  eval_data = eval_batches(config, spec_params)
  # Batches are read and placed on the devices `prefetch_batches` ahead, in a thread that works
  # while the step computes; get_state() is the position of the last batch consumed.
  train_iter = prefetch.Prefetcher(host_iter, config.prefetch_batches, transform=par.batch)
  t0 = time.time()
  with _sigterm_flag() as sigterm, contextlib.closing(train_iter):
    for step in range(first_step + 1, config.num_train_steps + 1):
      state, metrics = par.train_step(state, next(train_iter))
      jax.block_until_ready(metrics["loss"])  # several local processes can deadlock otherwise
      evaluated = step % config.eval_every == 0 or step == config.num_train_steps
      evals = evaluate(par, state, config, spec_params, eval_data) if evaluated else None
      for k, (run, m) in enumerate(zip(runs, par.per_run(metrics))):
        _after_step(run, par, state, k, step, first_step, t0, m, evals and evals[k])
      if step % config.checkpoint_every == 0 or step == config.num_train_steps or sigterm["set"]:
        data_state = {"iterator": train_iter.get_state()}
        for k, run in enumerate(runs):
          start = time.time()
          run.checkpointer.save(step, par.to_save(state, k), data_state,
                                run.last_eval if evaluated else None)
          run.writer.write(step, {"checkpoint_blocked_s": time.time() - start})
      if sigterm["set"]:
        for run in runs:
          run.close()
        raise Preempted(f"SIGTERM at step {step}: checkpoint saved in {', '.join(workdirs)}; rerun "
                        "the same command to resume")
  for run in runs:
    run.close()
  return [run.last_eval for run in runs]


def _after_step(run: _Run, par, state, k, step, first_step, t0, metrics, eval_metrics):
  """Run k's bookkeeping after a step: the non-finite check, logging, evaluation results, hooks."""
  config = run.config
  loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])  # blocks on the step
  if not (math.isfinite(loss) and math.isfinite(grad_norm)):
    run.writer.write(step, {"train_loss": loss, "grad_norm": grad_norm})
    if config.on_nonfinite == "stop":
      run.checkpointer.close()
      raise FloatingPointError(
          f"non-finite training loss {loss} / gradient norm {grad_norm} at step {step}; the last "
          f"good checkpoint (step {run.checkpointer.latest_step()}) in {run.workdir} is intact. Set "
          "config.on_nonfinite='record' to record the explosion and continue.")
  run.train_sums = losses.add_sums(run.train_sums, metrics["sums"])
  if step % config.log_every == 0 or step == config.num_train_steps:
    summary = losses.summarize(run.train_sums)
    rate = (step - first_step) / max(time.time() - t0, 1e-9)
    run.writer.write(step, {"train_loss": summary["loss"], "train_score": summary["score"],
                            "grad_norm": grad_norm, "learning_rate": float(metrics["learning_rate"]),
                            "steps_per_sec": rate})
    run.writer.progress(step, first_step, f"loss {summary['loss']:.4f}")
    run.train_sums = None
  if eval_metrics is not None:
    run.last_eval = eval_metrics
    run.writer.write(step, eval_metrics)
    run.run_hooks(par, state, k, step)
    run.writer.progress(step, first_step, " ".join(f"{n} {v:.4f}" for n, v in eval_metrics.items()))
