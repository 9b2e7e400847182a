"""Train K seeds of one config at once, in one compiled program: `jax.vmap` over the seeds, or
(`loop=True`) `jax.lax.map`, the single-seed step run for each seed in turn inside the program.

  states = init_states(model, tx, spec, seeds, example_batch)      # TrainState, leading axis K
  step = make_vmapped_train_step(model, tx, spec, schedule, seeds)  # jit it
  states, metrics = step(states, batch)                             # metrics with leading axis K

vmap batches every product over the seeds; the loop keeps each seed's products the size of one
run's, which on CPU is faster for most comparison models (config.seed_parallelism='map', the 'auto'
choice there: BENCHMARKS.md "Choices by backend"). Both compile once for all K seeds.

Seed k is initialised with PRNGKey(seeds[k]) and draws its dropout masks from PRNGKey(seeds[k] + 1),
as `steps.create_state` and `steps.make_train_step` do for a run with config.seed = seeds[k]; all
seeds see the same batch. So each slice of the stacked states follows the run that seed would have
had on its own with that data. On an accelerator, where one small model's step leaves the device
idle, vmapped seeds train in little more than the time of one.

Populations: runs that also differ in the optimizer's scalars (`attnlab.train.optim.HYPERPARAMS`:
learning rate, warmup and schedule length, clip norm, weight decay) train the same way. Each
member's state carries its own values (`init_states(..., hyperparams=)`), and the step reads them
from the state: the update, the learning_rate metric and grad_norm_clipped are the member's.
"""
import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from attnlab.train import optim, steps


def init_states(model, tx, spec, seeds: Sequence[int], example_batch,
                hyperparams: Sequence[dict] = None) -> steps.TrainState:
  """The K train states of `seeds`, stacked along a new leading axis; with `hyperparams` (one dict
  of optim.HYPERPARAMS per seed) member k's optimizer state carries hyperparams[k]."""
  # One compiled initialiser run once per seed: seed k starts from exactly the state a run of seed
  # k alone starts from. (Eagerly, every op of a vmapped init compiles on its own: 14 s for the copy
  # LRU's two seeds on CPU, against 4 s; the vmapped init as one program intermittently deadlocked
  # in XLA:CPU with jaxlib 0.10.2, an LSTM's on 3 of 5 tries.)
  init = steps.jit_init(functools.partial(steps.create_state, model, tx, spec))
  states = [init(jax.random.PRNGKey(seed), example_batch) for seed in seeds]
  if hyperparams is not None:
    states = [s.replace(opt_state=optim.set_hyperparams(s.opt_state, hp))
              for s, hp in zip(states, hyperparams)]
  return _stack(states)


@jax.jit
def _stack(states: list):
  """The states stacked along a new leading axis, in one compiled program (eagerly, one per leaf)."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def make_vmapped_train_step(model, tx, spec, schedule, seeds: Sequence[int], *, dtype=jnp.float32,
                            label_smoothing: float = 0.0, clip_norm=None, loop: bool = False,
                            microbatches=1):
  """(stacked states, one batch) -> (stacked states, stacked metrics): one step of every seed
  (`loop`: one seed after another inside the program, with lax.map, instead of vmapped)."""
  seeds = jnp.asarray(seeds)

  def one_seed(seed, state, batch):
    hp = optim.injected_hyperparams(state.opt_state)  # this member's (a population's)
    own_schedule, own_clip = schedule, clip_norm
    if hp is not None and hasattr(schedule, "of"):
      own_schedule, own_clip = schedule.of(hp), (hp["clip_norm"] if clip_norm else None)
    step = steps.make_train_step(model, tx, spec, own_schedule, seed=seed, dtype=dtype,
                                 label_smoothing=label_smoothing, clip_norm=own_clip,
                                 microbatches=microbatches)
    return step(state, batch)

  if loop:
    return lambda states, batch: jax.lax.map(lambda a: one_seed(a[0], a[1], batch), (seeds, states))
  vmapped = jax.vmap(one_seed)

  def step(states, batch):
    # One copy of the batch per seed: with the batch unbatched, XLA computes products of shared
    # inputs and per-seed weights for all seeds at once and then transposes the result.
    batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(seeds),) + a.shape), batch)
    return vmapped(seeds, states, batch)

  return step


def make_eval_step(model, spec, *, dtype=jnp.float32, loop: bool = False):
  """(stacked params, one batch, stacked model state) -> stacked metric sums of every seed."""
  one = steps.make_eval_step(model, spec, dtype=dtype)
  if loop:
    return lambda params, batch, model_state: jax.lax.map(lambda a: one(a[0], batch, a[1]),
                                                          (params, model_state))
  return jax.vmap(one, in_axes=(0, None, 0))


def unstack(states, k: int):
  """The train state of the k-th seed."""
  return jax.tree.map(lambda x: x[k], states)
