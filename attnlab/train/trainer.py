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
from attnlab.train import checkpoints as ckpt_lib
from attnlab.train import config as cfg_lib
from attnlab.train import losses, optim, sharding, steps
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
  loader, _ = data.make_dataset(
      config.task.name, spec_params, split=split, batch_size=config.batch_size, seed=config.seed,
      source=config.task.source, data_dir=config.task.data_dir, split_sizes=sizes,
      shard_index=jax.process_index(), shard_count=jax.process_count())
  return loader


class Parallel:
  """The jit-with-Mesh path or the pmap path behind one interface."""

  def __init__(self, config, model, tx, spec, schedule):
    self.pmap = config.parallelism == "pmap"
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
    kw = dict(seed=config.seed, dtype=dtype, label_smoothing=config.label_smoothing)
    self.model, self.tx, self.spec = model, tx, spec
    if self.pmap:
      self.train_step = jax.pmap(steps.make_train_step(model, tx, spec, schedule, axis_name="batch", **kw),
                                 axis_name="batch", donate_argnums=0)
      self.eval_step = jax.pmap(steps.make_eval_step(model, spec, dtype=dtype, axis_name="batch"),
                                axis_name="batch")
      return
    self.mesh = sharding.make_mesh(config)
    self.rules = config.logical_axis_rules
    self._train_fn = steps.make_train_step(model, tx, spec, schedule, **kw)
    self._eval_fn = steps.make_eval_step(model, spec, dtype=dtype)

  def init_state(self, rng, example):
    """(state placed on devices, abstract state with shardings for restoring)."""
    init = functools.partial(steps.create_state, self.model, self.tx, self.spec)
    abstract = jax.eval_shape(init, rng, example)
    if self.pmap:
      return jax_utils.replicate(jax.jit(init)(rng, example)), abstract
    specs = steps.TrainState(step=jax.sharding.PartitionSpec(),
                             params=sharding.param_specs(abstract.params, self.rules, self.mesh),
                             opt_state=sharding.param_specs(abstract.opt_state, self.rules, self.mesh))
    self.state_shardings = sharding.shardings(specs, self.mesh)
    state = jax.jit(init, out_shardings=self.state_shardings)(rng, example)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, self.state_shardings)
    batch = sharding.batch_sharding(self.mesh)
    self.train_step = jax.jit(self._train_fn, in_shardings=(self.state_shardings, batch),
                              out_shardings=(self.state_shardings, None), donate_argnums=0)
    self.eval_step = jax.jit(self._eval_fn, in_shardings=(self.state_shardings.params, batch))
    return state, abstract

  def place_restored(self, state):
    return jax_utils.replicate(state) if self.pmap else state

  def to_save(self, state):
    return jax.device_get(jax_utils.unreplicate(state)) if self.pmap else state

  def batch(self, local):
    return sharding.split_for_pmap(local) if self.pmap else sharding.global_batch(local, self.mesh)

  def params(self, state):
    return state.params

  def host_params(self, state):
    """The parameters as NumPy arrays on every host (a collective when there are several)."""
    params = jax_utils.unreplicate(state.params) if self.pmap else state.params
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      return multihost_utils.process_allgather(params, tiled=True)
    return jax.device_get(params)

  def unreplicate_metrics(self, metrics):
    return jax_utils.unreplicate(metrics) if self.pmap else metrics


def evaluate(par: Parallel, state, config, spec_params) -> dict:
  """Mean metrics over the fixed validation split, as {'eval_loss': ..., 'eval_score': ...}."""
  total = None
  for i, local in enumerate(make_datasets(config, spec_params, eval_split(config, spec_params))):
    if i >= config.num_eval_batches:
      break
    sums = par.unreplicate_metrics(par.eval_step(par.params(state), par.batch(local)))
    total = losses.add_sums(total, sums)
  return {f"eval_{k}": v for k, v in losses.summarize(total).items()}


def _run_hooks(hooks, par, state, step, workdir, writer):
  """Calls each hook(step, host params, workdir) -> scalars on process 0 and logs what they return."""
  if not hooks:
    return
  params = par.host_params(state)
  if jax.process_index() == 0:
    scalars = {}
    for hook in hooks:
      scalars.update(hook(step, params, workdir) or {})
    writer.write(step, scalars)


def train_and_evaluate(config, workdir: str, hooks=()) -> dict:
  """Trains config's model on config's task in `workdir`; returns the last evaluation metrics.

  hooks: callables hook(step, params as NumPy, workdir) -> dict of scalars, run before the first
  step of a new run and at every evaluation (e.g. gradient-flow measurements); what they return is
  logged with the metrics.
  """
  sharding.maybe_initialize_distributed(config)
  spec, model_config = cfg_lib.validate(config, sharding.data_axis_size(config), jax.process_count())
  check_resumable_config(workdir, config)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  par = Parallel(config, model, tx, spec, schedule)
  spec_params = cfg_lib.task_params(config)
  example = tasks.generate(config.task.name, 1, **spec_params)
  example = {k: v for k, v in example.items() if v.dtype != object}
  state, abstract = par.init_state(jax.random.PRNGKey(config.seed), example)

  train_loader = make_datasets(config, spec_params, "train")
  train_iter = iter(train_loader)
  ck = config.checkpoint
  checkpointer = ckpt_lib.Checkpointer(workdir, ck.keep, ck.best_metric, ck.best_mode, ck.async_save,
                                       config_to_json(config))
  restored = checkpointer.restore(abstract if not par.pmap else _host_abstract(abstract))
  last_eval = {}
  if restored is not None:
    state, data_state, meta = restored
    state = par.place_restored(state)
    train_iter.set_state(data_state["iterator"])
    last_eval = {k: v for k, v in meta.items() if k.startswith("eval_")}
  first_step = int(jax.device_get(par.to_save(state).step))
  writer = MetricWriter(workdir, config.num_train_steps)
  if first_step >= config.num_train_steps:
    writer.progress(first_step, first_step, "finished already; raise num_train_steps to continue")
    checkpointer.close()
    writer.close()
    return last_eval

  if first_step == 0:
    _run_hooks(hooks, par, state, 0, workdir, writer)
  train_sums, t0, step = None, time.time(), first_step
  with _sigterm_flag() as sigterm:
    for step in range(first_step + 1, config.num_train_steps + 1):
      state, metrics = par.train_step(state, par.batch(next(train_iter)))
      metrics = par.unreplicate_metrics(metrics)
      loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])  # blocks on the step
      if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        writer.write(step, {"train_loss": loss, "grad_norm": grad_norm})
        if config.on_nonfinite == "stop":
          checkpointer.close()
          raise FloatingPointError(
              f"non-finite training loss {loss} / gradient norm {grad_norm} at step {step}; the last "
              f"good checkpoint (step {checkpointer.latest_step()}) in {workdir} is intact. Set "
              "config.on_nonfinite='record' to record the explosion and continue.")
      train_sums = losses.add_sums(train_sums, metrics["sums"])
      if step % config.log_every == 0 or step == config.num_train_steps:
        summary = losses.summarize(train_sums)
        rate = (step - first_step) / max(time.time() - t0, 1e-9)
        writer.write(step, {"train_loss": summary["loss"], "train_score": summary["score"],
                            "grad_norm": grad_norm, "learning_rate": float(metrics["learning_rate"]),
                            "steps_per_sec": rate})
        writer.progress(step, first_step, f"loss {summary['loss']:.4f}")
        train_sums = None
      evaluated = step % config.eval_every == 0 or step == config.num_train_steps
      if evaluated:
        last_eval = evaluate(par, state, config, spec_params)
        writer.write(step, last_eval)
        _run_hooks(hooks, par, state, step, workdir, writer)
        writer.progress(step, first_step, " ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
      if step % config.checkpoint_every == 0 or step == config.num_train_steps or sigterm["set"]:
        start = time.time()
        checkpointer.save(step, par.to_save(state), {"iterator": train_iter.get_state()},
                          last_eval if evaluated else None)
        writer.write(step, {"checkpoint_blocked_s": time.time() - start})
      if sigterm["set"]:
        checkpointer.close()
        writer.close()
        raise Preempted(f"SIGTERM at step {step}: checkpoint saved in {workdir}; rerun the same "
                        "command to resume")
  checkpointer.close()
  writer.close()
  return last_eval


def _host_abstract(abstract):
  """The pmap path restores onto the first local device, then replicates."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)
