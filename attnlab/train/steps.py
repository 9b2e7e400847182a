"""The train state and the pure train/eval steps.

`TrainState` holds step, params (float32), the optimizer state and `model_state`: the model's
non-parameter collections (`MODEL_STATE`, e.g. BatchNorm's `batch_stats`; {} for models without
them), updated by the train step (BatchNorm: batch statistics, running averages kept) and read by
the eval step (BatchNorm: running averages). The dropout key of step s is
fold_in(PRNGKey(seed + 1), s), so a resumed run draws the same dropout masks. Steps are pure
functions of (state, batch); `make_*_step` closes over the model, optimizer and task. With
`axis_name` (the pmap path) gradients and metric sums are averaged / summed across devices; under
`jax.jit` with shardings XLA inserts the same collectives itself.

Train-step metrics: loss, learning_rate, the metric sums, grad_norm (global norm of the gradient
before clipping) and grad_norm_clipped (global norm of what the optimizer receives: after
`optim.clip` with clip_norm, which equals grad_norm when clipping is off or inactive).

`microbatches` k > 1 splits the batch into k microbatches (microbatch j: rows j, j+k, j+2k, ...,
so a batch sharded over devices stays sharded) run one after another inside the step (lax.scan),
summing each one's loss total, metric sums and gradient of its loss total; the loss and gradient
are then divided by the batch's loss count: the same mean-loss gradient as one pass (float32
summation order aside), with each microbatch's activations small enough to stay in cache
(`Microbatching`: on 2 CPU cores the comparison Transformer's step is 1.18-1.49x faster at
T=150-1000, BENCHMARKS.md "Choices by backend"). Dropout key of microbatch j: fold_in(step key,
j). Not with `model_state` (BatchNorm's statistics are per batch).
"""
import dataclasses

import flax
import jax
import jax.numpy as jnp
import optax

from attnlab.train import losses, optim


MODEL_STATE = ("batch_stats",)


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  model_state: dict = flax.struct.field(default_factory=dict)


def init_compiler_options() -> dict:
  """XLA options for compiling a state initialiser, a program that runs once: on CPU, backend
  optimisation level 0 halves its compile time (7.5 -> 3.6 s for the copy LRU's); its values
  differ from the optimised program's by float32 rounding (measured: at most 5e-6, LSTM).
  Elsewhere the backend's defaults."""
  return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else {}


def jit_init(fn, **jit_kwargs):
  """jax.jit(fn) compiled with init_compiler_options()."""
  return jax.jit(fn, compiler_options=init_compiler_options() or None, **jit_kwargs)


def create_state(model, tx, spec, rng, example_batch) -> TrainState:
  """Initialises parameters from a batch of this task (shapes only) and the optimizer state."""
  variables = model.init(rng, *losses.model_inputs(spec, example_batch))
  params = variables["params"]
  model_state = {k: v for k, v in variables.items() if k in MODEL_STATE}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    model_state=model_state)


def _cast(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _apply(model, spec, params, batch, dtype, train, dropout_rng, model_state=None):
  """(outputs float32, the new model_state: updated in training, else unchanged)."""
  model_state = model_state or {}
  inputs = _cast(losses.model_inputs(spec, batch), dtype)
  rngs = {"dropout": dropout_rng} if train else None
  variables = {"params": _cast(params, dtype), **model_state}
  if train and model_state:
    outputs, new_state = model.apply(variables, *inputs, train=True, rngs=rngs,
                                     mutable=list(model_state))
    new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), dict(new_state), model_state)
  else:
    outputs, new_state = model.apply(variables, *inputs, train=train, rngs=rngs), model_state
  return outputs.astype(jnp.float32), new_state


@dataclasses.dataclass(frozen=True)
class Microbatching:
  """How many microbatches a step splits its batch into: the fewest k (a divisor of the batch's
  rows) whose microbatch of activations, rows/k x T x `width` float32, fits `budget_bytes`.
  `width`: the model's width times the runs vmapped together."""
  budget_bytes: int
  width: int

  def count(self, rows: int, length: int) -> int:
    for k in range(1, rows + 1):
      if rows % k == 0 and (rows // k) * length * self.width * 4 <= self.budget_bytes:
        return k
    return rows


def make_train_step(model, tx, spec, schedule, *, seed: int, dtype=jnp.float32,
                    label_smoothing: float = 0.0, clip_norm=None, axis_name=None,
                    microbatches=1):
  """(state, batch) -> (state, metrics): one optimizer step on the batch's mean loss.

  clip_norm: the clipping threshold inside `tx` (config.optimizer.clip_norm), for the
  grad_norm_clipped metric only: `tx` does the clipping.
  microbatches: an int k, or a `Microbatching` that picks k from the batch's shape (the module
  docstring says what k > 1 does).
  """
  base_rng = jax.random.PRNGKey(seed + 1)

  def train_step(state: TrainState, batch: dict):
    dropout_rng = jax.random.fold_in(base_rng, state.step)
    if axis_name is not None:
      dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

    def loss_fn(params, batch, rng):
      outputs, model_state = _apply(model, spec, params, batch, dtype, True, rng,
                                    state.model_state)
      loss, sums = losses.loss_and_metrics(spec, outputs, batch, label_smoothing)
      return loss, (sums, model_state)

    k = _microbatch_count(microbatches, batch)
    if k > 1:
      if state.model_state:
        raise ValueError("microbatches > 1 needs a model without batch statistics (model_state)")
      loss, sums, grads = _microbatched(lambda *a: loss_fn(*a)[1][0], state.params, batch, k,
                                        dropout_rng)
      model_state = state.model_state
    else:
      (loss, (sums, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params, batch, dropout_rng)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      loss = jax.lax.pmean(loss, axis_name)
      sums = jax.lax.psum(sums, axis_name)
      model_state = jax.lax.pmean(model_state, axis_name)  # per-device statistics, averaged
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
               "grad_norm_clipped": optax.tree.norm(optim.clip(grads, clip_norm)),
               "learning_rate": schedule(state.step), "sums": sums}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                      model_state=model_state), metrics

  return train_step


def microbatch_count(microbatches, rows: int, length: int) -> int:
  """k for a batch of `rows` sequences of `length` steps: `microbatches` itself (an int), or what
  a `Microbatching` picks for that shape."""
  k = (microbatches.count(rows, length) if isinstance(microbatches, Microbatching)
       else microbatches)
  if rows % k:
    raise ValueError(f"microbatches={k} does not divide the batch's {rows} rows")
  return k


def _microbatch_count(microbatches, batch) -> int:
  """`microbatch_count` for this batch's inputs (B,T,...)."""
  inputs = jax.tree.leaves(batch)[0] if "inputs" not in batch else batch["inputs"]
  return microbatch_count(microbatches, inputs.shape[0], inputs.shape[1] if inputs.ndim > 1 else 1)


def _microbatched(sums_fn, params, batch, k: int, rng):
  """(loss, metric sums, gradient of the mean loss) of `batch` in k microbatches, one at a time.
  sums_fn(params, microbatch, rng) -> {name: (total, count)}, differentiable in 'loss' total."""
  split = lambda a: jnp.swapaxes(a.reshape((a.shape[0] // k, k) + a.shape[1:]), 0, 1)
  chunks = jax.tree.map(split, batch)

  def total(p, chunk, j):
    sums = sums_fn(p, chunk, jax.random.fold_in(rng, j))
    return sums["loss"][0], sums

  def one(acc, chunk_j):
    (_, sums), grads = jax.value_and_grad(total, has_aux=True)(params, *chunk_j)
    return jax.tree.map(jnp.add, acc, (sums, grads)), None

  first = jax.tree.map(lambda a: a[0], chunks)
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                       jax.eval_shape(lambda: (total(params, first, 0)[1], params)))
  sums, grads = jax.lax.scan(one, zeros, (chunks, jnp.arange(k)))[0]
  count = jnp.maximum(sums["loss"][1], 1.0)
  return sums["loss"][0] / count, sums, jax.tree.map(lambda g: g / count, grads)


def make_eval_step(model, spec, *, dtype=jnp.float32, axis_name=None):
  """(params, batch, model_state={}) -> {name: (total, count)} metric sums."""

  def eval_step(params, batch, model_state=None):
    outputs, _ = _apply(model, spec, params, batch, dtype, False, None, model_state)
    _, sums = losses.loss_and_metrics(spec, outputs, batch)
    return jax.lax.psum(sums, axis_name) if axis_name is not None else sums

  return eval_step
