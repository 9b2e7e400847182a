"""Losses and metrics for every task kind, as sums that add up across batches and devices.

`loss_and_metrics(spec, outputs, batch)` returns (loss, sums) where loss is the weighted mean used
for gradients and `sums` maps names to (total, count) pairs. `summarize(sums)` turns accumulated
pairs into means. Every task reports `loss` and `score`, its headline metric in [0, 1], higher is
better:
  classification   accuracy over scored targets (copy: over the copied symbols, not the blanks)
  regression       fraction of sequences solved, |error| < regression_tolerance(spec): 0.08 on
                   adding's default target, 0.04 on its hochreiter1997 target (the same criterion,
                   Hochreiter & Schmidhuber's, on two scales: attnlab.tasks.adding)
  seq2seq          per-token accuracy under teacher forcing; `exact` is whole-sequence accuracy
and `wrong`: (sequences that miss, sequences), a sequence missing when its |error| >= the tolerance
(regression), any scored symbol is wrong (per-step tasks, copy: the copied symbols) or it is
misclassified; sequences whose weights are all 0 (padding) count in neither.
"""
import jax
import jax.numpy as jnp
import optax

from attnlab.tasks import adding
from attnlab.tasks.adding import ADDING_TOLERANCE

SOLVED_TOLERANCE = ADDING_TOLERANCE  # the only regression task is adding (default variant)


def regression_tolerance(spec) -> float:
  """|error| below which a sequence of the regression task `spec` is right: SOLVED_TOLERANCE for
  adding's default variant, else adding.tolerance of the variant (0.04 for hochreiter1997)."""
  if spec.params.get("variant", adding.DEFAULTS["variant"]) == adding.DEFAULTS["variant"]:
    return SOLVED_TOLERANCE
  return adding.tolerance(spec.params)


def _cross_entropy(logits, targets, label_smoothing: float):
  num_classes = logits.shape[-1]
  onehot = jax.nn.one_hot(targets, num_classes, dtype=jnp.float32)
  if label_smoothing:
    onehot = optax.smooth_labels(onehot, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)


def _pair(total, count):
  return jnp.stack([jnp.sum(total), jnp.sum(count)]).astype(jnp.float32)


def model_inputs(spec, batch):
  """The positional arguments of model.apply for this task's batch."""
  if spec.kind == "seq2seq":
    return (batch["source"], batch["target_inputs"], batch["source_lengths"])
  return (batch["inputs"], batch["lengths"])


def loss_and_metrics(spec, outputs, batch, label_smoothing: float = 0.0):
  """outputs: model outputs for `batch` -> (scalar loss, {name: (total, count)})."""
  if spec.kind == "regression":
    pred = outputs[..., 0]
    err = pred - batch["targets"]
    weight = batch["mask"]
    sq = err**2 * weight
    loss = jnp.sum(sq) / jnp.maximum(jnp.sum(weight), 1.0)
    right = jnp.abs(err) < regression_tolerance(spec)
    solved = right * weight
    return loss, {"loss": _pair(sq, weight), "score": _pair(solved, weight),
                  "mse": _pair(sq, weight), "mae": _pair(jnp.abs(err) * weight, weight),
                  "wrong": _wrong_sequences(right, weight)}

  if spec.kind == "seq2seq":
    targets, weight = batch["target"], batch["target_mask"]
  else:
    targets, weight = batch["targets"], batch["mask"]
  ce = _cross_entropy(outputs, targets, label_smoothing) * weight
  loss = jnp.sum(ce) / jnp.maximum(jnp.sum(weight), 1.0)
  correct = (jnp.argmax(outputs, -1) == targets).astype(jnp.float32)
  scored = weight * (targets != 0) if spec.name == "copy" else weight
  sums = {"loss": _pair(ce, weight), "score": _pair(correct * scored, scored),
          "accuracy": _pair(correct * weight, weight), "wrong": _wrong_sequences(correct, scored)}
  if spec.kind == "seq2seq":
    exact = jnp.all((correct > 0) | (weight == 0), axis=-1)
    sums["exact"] = _pair(exact, jnp.ones_like(exact))
  return loss, sums


def metric_names(spec) -> tuple:
  """The names of `loss_and_metrics(spec, ...)`'s sums that evaluation reports (as eval_<name>)."""
  own = {"regression": ("mse", "mae"), "classification": ("accuracy",),
         "seq2seq": ("accuracy", "exact")}[spec.kind]
  return ("loss", "score") + own


def _wrong_sequences(right, weight):
  """(sequences with a scored position not right, sequences with any scored position)."""
  scored = weight > 0
  wrong = scored & (right == 0)
  if wrong.ndim > 1:  # per-step targets (n, T): a sequence misses if any scored step does
    wrong, scored = jnp.any(wrong, axis=-1), jnp.any(scored, axis=-1)
  return _pair(wrong, scored)


def add_sums(a, b):
  """Elementwise sum of two {name: (total, count)} dicts (either may be None)."""
  if a is None:
    return b
  return jax.tree.map(lambda x, y: x + y, a, b)


def summarize(sums) -> dict:
  """{name: (total, count)} -> {name: total / count} as Python floats."""
  return {k: float(v[0]) / max(float(v[1]), 1e-12) for k, v in jax.device_get(sums).items()}
