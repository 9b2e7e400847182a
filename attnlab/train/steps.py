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
"""
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


def make_train_step(model, tx, spec, schedule, *, seed: int, dtype=jnp.float32,
                    label_smoothing: float = 0.0, clip_norm=None, axis_name=None):
  """(state, batch) -> (state, metrics): one optimizer step on the batch's mean loss.

  clip_norm: the clipping threshold inside `tx` (config.optimizer.clip_norm), for the
  grad_norm_clipped metric only: `tx` does the clipping.
  """
  base_rng = jax.random.PRNGKey(seed + 1)

  def train_step(state: TrainState, batch: dict):
    dropout_rng = jax.random.fold_in(base_rng, state.step)
    if axis_name is not None:
      dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
      outputs, model_state = _apply(model, spec, params, batch, dtype, True, dropout_rng,
                                    state.model_state)
      loss, sums = losses.loss_and_metrics(spec, outputs, batch, label_smoothing)
      return loss, (sums, model_state)

    (loss, (sums, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
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


def make_eval_step(model, spec, *, dtype=jnp.float32, axis_name=None):
  """(params, batch, model_state={}) -> {name: (total, count)} metric sums."""

  def eval_step(params, batch, model_state=None):
    outputs, _ = _apply(model, spec, params, batch, dtype, False, None, model_state)
    _, sums = losses.loss_and_metrics(spec, outputs, batch)
    return jax.lax.psum(sums, axis_name) if axis_name is not None else sums

  return eval_step
