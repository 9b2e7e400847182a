"""`Parallel`: the jit-with-Mesh path, the pmap path, or K seeds vmapped on one device, behind
one interface (train and eval steps, state placement, per-run slices of states and metrics).

Besides the one-step `train_step`, `train_steps(state, stacked)` runs several steps in one program
(`dispatch.scan_steps`) on batches placed together by `stacked_batches`; `per_run_steps` reads
their metrics once, as NumPy arrays (steps, runs, ...)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import jax_utils

from attnlab.train import config as cfg_lib
from attnlab.train import dispatch, sharding, steps, vmap_seeds


class Parallel:
  """The jit-with-Mesh path, the pmap path, or K seeds vmapped on one device, behind one interface.

  With several `seeds` the state carries a leading seed axis (`attnlab.train.vmap_seeds`): every
  seed sees the same batches, so seed k follows the run it would have had on its own.
  `hyperparams` (one dict of optim.HYPERPARAMS per seed): a population, member k starting with
  hyperparams[k] in its optimizer state (None: config.optimizer's for all).
  """

  def __init__(self, config, model, tx, spec, schedule, seeds=None, hyperparams=None):
    self.pmap = config.parallelism == "pmap"
    self.seeds = list(seeds) if seeds is not None else [config.seed]
    self.vmapped = len(self.seeds) > 1
    self.hyperparams = hyperparams
    dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
    loop = cfg_lib.seed_parallelism(config) == "map"
    kw = dict(dtype=dtype, label_smoothing=config.label_smoothing,
              clip_norm=config.optimizer.clip_norm,
              microbatches=cfg_lib.microbatches(
                  config, len(self.seeds) if self.vmapped and not loop else 1))
    self.model, self.tx, self.spec = model, tx, spec
    if self.vmapped:  # one program for all seeds: vmapped, or each seed in turn (lax.map)
      step_fn = vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule, self.seeds, loop=loop,
                                                   **kw)
      self.train_step = jax.jit(step_fn, donate_argnums=0)
      self.train_steps = jax.jit(dispatch.scan_steps(step_fn), donate_argnums=0)
      self._vmapped_fn = step_fn
      self.eval_step = jax.jit(vmap_seeds.make_eval_step(model, spec, dtype=dtype, loop=loop))
      return
    if self.pmap:
      step_fn = steps.make_train_step(model, tx, spec, schedule, axis_name="batch",
                                      seed=config.seed, **kw)
      self.train_step = jax.pmap(step_fn, axis_name="batch", donate_argnums=0)
      self.train_steps = jax.pmap(dispatch.scan_steps(step_fn, trace_once=False),
                                  axis_name="batch",
                                  donate_argnums=0)
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
      return vmap_seeds.init_states(self.model, self.tx, self.spec, self.seeds, example,
                                    self.hyperparams), \
          _on_device(abstract)
    if self.pmap:
      return jax_utils.replicate(steps.jit_init(init)(rng, example)), _on_device(abstract)
    specs = steps.TrainState(step=jax.sharding.PartitionSpec(),
                             params=sharding.param_specs(abstract.params, self.rules, self.mesh),
                             opt_state=sharding.param_specs(abstract.opt_state, self.rules, self.mesh),
                             model_state=sharding.param_specs(abstract.model_state, self.rules,
                                                              self.mesh))
    self.state_shardings = sharding.shardings(specs, self.mesh)
    state = steps.jit_init(init, out_shardings=self.state_shardings)(rng, example)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, self.state_shardings)
    batch = sharding.batch_sharding(self.mesh)
    self.train_step = jax.jit(self._train_fn, in_shardings=(self.state_shardings, batch),
                              out_shardings=(self.state_shardings, None), donate_argnums=0)
    self.train_steps = jax.jit(dispatch.scan_steps(self._train_fn),
                               in_shardings=(self.state_shardings, self._stacked_sharding()),
                               out_shardings=(self.state_shardings, None), donate_argnums=0)
    self.eval_step = jax.jit(self._eval_fn, in_shardings=(self.state_shardings.params, batch,
                                                           self.state_shardings.model_state))
    return state, abstract

  def fused_train_steps(self, batch_fn, max_steps: int):
    """The jitted `dispatch.fused_steps` program (state, first_step, n) -> (state, max_steps rows
    of metrics), the batches drawn inside from `batch_fn(step)`; None where it does not apply
    (pmap, several processes or devices: their batches are placed across devices from outside).
    Call after init_state."""
    return self._fused(dispatch.fused_steps, batch_fn, max_steps, more_in=2, more_out=1)

  def fused_train_steps_until(self, batch_fn, max_steps: int):
    """fused_train_steps' program that ends early where the hochreiter1997 rule may be met
    (`dispatch.fused_steps_until`): (state, first_step, n, window, watch, mse) -> (state, rows,
    steps run); None where fused_train_steps is."""
    return self._fused(dispatch.fused_steps_until, batch_fn, max_steps, more_in=5, more_out=2)

  def _fused(self, program, batch_fn, max_steps: int, more_in: int, more_out: int):
    """`program(train step, batch_fn, max_steps)` jitted with the state donated (and placed by
    state_shardings when not vmapped; its other `more_in` inputs and `more_out` outputs
    unplaced); None with pmap, several processes or several devices."""
    if self.pmap or jax.process_count() > 1 or jax.device_count() > 1:
      return None
    if self.vmapped:
      return jax.jit(program(self._vmapped_fn, batch_fn, max_steps), donate_argnums=0)
    return jax.jit(program(self._train_fn, batch_fn, max_steps),
                   in_shardings=(self.state_shardings,) + (None,) * more_in,
                   out_shardings=(self.state_shardings,) + (None,) * more_out, donate_argnums=0)

  def place_restored(self, states: list):
    """The restored state of every run (one per seed) placed for training."""
    if self.vmapped:
      return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    return jax_utils.replicate(states[0]) if self.pmap else states[0]

  def to_save(self, state, k: int = 0):
    """Run k's state, ready for its checkpoint."""
    if self.vmapped:
      return _seed_slice(state, k)
    return jax.device_get(jax_utils.unreplicate(state)) if self.pmap else state

  def batch(self, local):
    if self.vmapped:
      return jax.tree.map(jnp.asarray, local)
    return sharding.split_for_pmap(local) if self.pmap else sharding.global_batch(local, self.mesh)

  def _stacked_sharding(self):
    """Batches stacked on a leading steps axis: the batch axis (1) over 'data'."""
    return jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(None, "data"))

  def stacked_batches(self, local_batches: list):
    """This host's batches of K steps -> placed, stacked on a leading steps axis (what
    train_steps takes; pmap: (devices, K, per-device batch, ...))."""
    return self.place_stacked(dispatch.stack(local_batches))

  def place_stacked(self, stacked: dict):
    """This host's batches of K steps, already stacked on a leading steps axis (host or device
    arrays, e.g. drawn on the device: attnlab.data.on_device) -> placed as train_steps takes them."""
    if self.vmapped:
      return jax.device_put(stacked)
    if self.pmap:
      n = jax.local_device_count()
      return {k: np.swapaxes(v.reshape((v.shape[0], n, v.shape[1] // n) + v.shape[2:]), 0, 1)
              for k, v in stacked.items()}
    sharding = self._stacked_sharding()
    if jax.process_count() == 1:
      return jax.device_put(stacked, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in stacked.items()}

  def per_run_steps(self, metrics: list):
    """The metrics of consecutive train_steps calls, fetched at once, as NumPy arrays with axes
    (step, run, ...)."""
    host = jax.device_get(metrics)
    if not self.vmapped:
      host = jax.tree.map(lambda x: np.expand_dims(x[0] if self.pmap else x, 1), host)
    return jax.tree.map(lambda *xs: np.concatenate(xs), *host)

  def params(self, state):
    return state.params

  def host_params(self, state, k: int = 0):
    """Run k's parameters as NumPy arrays on every host (a collective when there are several)."""
    if self.vmapped:
      return jax.device_get(_seed_slice(state.params, k))
    params = jax_utils.unreplicate(state.params) if self.pmap else state.params
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      return multihost_utils.process_allgather(params, tiled=True)
    return jax.device_get(params)

  def per_run(self, metrics) -> list:
    """Step metrics of each run: [metrics] or, vmapped, one slice per seed."""
    if self.vmapped:  # one transfer, then NumPy slices (not one eager device op per leaf and seed)
      host = jax.device_get(metrics)
      return [jax.tree.map(lambda x: x[k], host) for k in range(len(self.seeds))]
    return [jax_utils.unreplicate(metrics) if self.pmap else metrics]


@jax.jit
def _seed_slice(tree, k):
  """Seed k's slice of a vmapped pytree, in one compiled program (eagerly, one per leaf)."""
  return jax.tree.map(lambda x: x[k], tree)


def _on_device(abstract):
  """Restore target on the first local device (pmap replicates it, the vmapped path stacks it)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)
