"""The train state and the pure train/eval steps.

`TrainState` holds step, params (float32) and the optimizer state; the dropout key of step s is
fold_in(PRNGKey(seed + 1), s), so a resumed run draws the same dropout masks. Steps are pure
functions of (state, batch); `make_*_step` closes over the model, optimizer and task. With
`axis_name` (the pmap path) gradients and metric sums are averaged / summed across devices; under
`jax.jit` with shardings XLA inserts the same collectives itself.
"""
import flax
import jax
import jax.numpy as jnp
import optax

from attnlab.train import losses


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState


def create_state(model, tx, spec, rng, example_batch) -> TrainState:
  """Initialises parameters from a batch of this task (shapes only) and the optimizer state."""
  params = model.init(rng, *losses.model_inputs(spec, example_batch))["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def _cast(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _apply(model, spec, params, batch, dtype, train, dropout_rng):
  inputs = _cast(losses.model_inputs(spec, batch), dtype)
  rngs = {"dropout": dropout_rng} if train else None
  outputs = model.apply({"params": _cast(params, dtype)}, *inputs, train=train, rngs=rngs)
  return outputs.astype(jnp.float32)


def make_train_step(model, tx, spec, schedule, *, seed: int, dtype=jnp.float32,
                    label_smoothing: float = 0.0, clip_norm=None, axis_name=None):
  """(state, batch) -> (state, metrics): one optimizer step on the batch's mean loss.

  metrics: loss, grad_norm (global norm before clipping), grad_norm_clipped (after clipping at
  `clip_norm`, the `config.optimizer.clip_norm` that `tx` clips with; equal to grad_norm without it).
  """
  base_rng = jax.random.PRNGKey(seed + 1)

  def train_step(state: TrainState, batch: dict):
    dropout_rng = jax.random.fold_in(base_rng, state.step)
    if axis_name is not None:
      dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
      outputs = _apply(model, spec, params, batch, dtype, True, dropout_rng)
      return losses.loss_and_metrics(spec, outputs, batch, label_smoothing)

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      loss = jax.lax.pmean(loss, axis_name)
      sums = jax.lax.psum(sums, axis_name)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    clipped = optax.clip_by_global_norm(clip_norm).update(grads, None)[0] if clip_norm else grads
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
               "grad_norm_clipped": optax.tree.norm(clipped),
               "learning_rate": schedule(state.step), "sums": sums}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_step(model, spec, *, dtype=jnp.float32, axis_name=None):
  """(params, batch) -> {name: (total, count)} metric sums."""

  def eval_step(params, batch):
    outputs = _apply(model, spec, params, batch, dtype, False, None)
    _, sums = losses.loss_and_metrics(spec, outputs, batch)
    return jax.lax.psum(sums, axis_name) if axis_name is not None else sums

  return eval_step
