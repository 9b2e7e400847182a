"""Optimizers and learning-rate schedules from `config.optimizer`.

  name          adam | adamw | sgd (with `momentum`, Nesterov optional)
  schedule      constant | warmup_cosine | rsqrt (Vaswani et al.: lr * min(s^-0.5, s w^-1.5) * sqrt(w),
                which peaks at `learning_rate` after `warmup_steps`)
  schedule_steps
                the length of warmup_cosine (it decays to 0 there and stays 0); None: the run's
                num_train_steps. A run's schedule length is fixed once it has a checkpoint (see
                `schedule_length`), so set it when a run may later be continued past num_train_steps.
  clip_norm     global-norm gradient clipping (Pascanu et al. 2013): g <- g * tau / max(||g||, tau);
                None or 0 disables it
  recurrent_params, recurrent_lr_scale
                parameter groups: every parameter whose own name (the last key of its path, e.g.
                'nu_log') is in `recurrent_params` is trained with learning rate
                recurrent_lr_scale * schedule(step) and no weight decay; all others with the
                schedule and `weight_decay`. The default names are the LRU's recurrent parameters
                (nu_log, theta_log, gamma_log), which Orvieto et al. 2023 train with a reduced
                learning rate and without weight decay (minimal-LRU: lr_factor 0.5). With scale 1
                and no weight decay there is one group (the optimizer state of a plain optimizer).
"""
import math

import jax
import ml_collections
import optax
import jax.numpy as jnp

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "rsqrt")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, schedule="constant", warmup_steps=0, b1=0.9, b2=0.999,
      eps=1e-8, weight_decay=0.0, momentum=0.9, nesterov=False, clip_norm=1.0,
      recurrent_params=RECURRENT_PARAMS, recurrent_lr_scale=1.0,
      schedule_steps=ml_collections.FieldReference(None, field_type=int)))


RECURRENT_PARAMS = ("nu_log", "theta_log", "gamma_log")


def param_groups(params, names) -> dict:
  """The tree of params with 'recurrent' where a leaf's own name is in `names`, else 'other'."""
  names = set(names or ())

  def label(path, _):
    key = path[-1]
    name = getattr(key, "key", getattr(key, "name", None))
    return "recurrent" if name in names else "other"

  return jax.tree_util.tree_map_with_path(label, params)


# The numeric fields of config.optimizer: (test, what is allowed). NaN fails every test.
_NUMBERS = {
    "learning_rate": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "b1": (lambda v: 0 <= v < 1, "in [0, 1)"), "b2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eps": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "weight_decay": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "clip_norm": (lambda v: 0 <= v < math.inf, "a finite number >= 0 (0 or None: no clipping)"),
}


def check_config(opt):
  """ValueError naming the field if a number of config.optimizer is not allowed (NaN included)."""
  for key, (ok, allowed) in _NUMBERS.items():
    value = opt.get(key)
    if value is None and key == "clip_norm":
      continue
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
      raise ValueError(f"config.optimizer.{key}={value!r}; must be {allowed}")
  steps = opt.get("warmup_steps")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"config.optimizer.warmup_steps={steps!r}; must be an integer >= 0")
  steps = opt.get("schedule_steps")
  if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
    raise ValueError(f"config.optimizer.schedule_steps={steps!r}; must be None (num_train_steps) "
                     "or an integer >= 1")


def schedule_length(opt, num_train_steps: int):
  """The number of steps the schedule's shape depends on (warmup_cosine: schedule_steps, else
  num_train_steps), or None when it does not depend on the run's length (constant, rsqrt)."""
  if opt.schedule != "warmup_cosine":
    return None
  return opt.get("schedule_steps") or num_train_steps


def make_schedule(opt, num_train_steps: int):
  """step -> learning rate; warmup_cosine spans `schedule_length(opt, num_train_steps)` steps."""
  lr, warmup = opt.learning_rate, opt.warmup_steps
  if opt.schedule == "constant":
    if not warmup:
      return optax.constant_schedule(lr)
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
                                [warmup])
  if opt.schedule == "warmup_cosine":
    length = schedule_length(opt, num_train_steps)
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(length, warmup + 1))
  if opt.schedule == "rsqrt":
    w = max(warmup, 1)

    def rsqrt(step):
      s = jnp.maximum(step, 1).astype(jnp.float32)
      return lr * jnp.sqrt(w) * jnp.minimum(s**-0.5, s * w**-1.5)

    return rsqrt
  raise ValueError(f"config.optimizer.schedule={opt.schedule!r}; valid choices: {list(SCHEDULES)}")


def clip(grads, clip_norm):
  """The gradients `make_optimizer`'s transformation passes on after its clipping step."""
  if not clip_norm:
    return grads
  return optax.clip_by_global_norm(clip_norm).update(grads, optax.EmptyState())[0]


def _base(opt, schedule, weight_decay):
  if opt.name == "adam":
    return optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  if opt.name == "adamw":
    return optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=weight_decay)
  if opt.name == "sgd":
    return optax.sgd(schedule, momentum=opt.momentum or None, nesterov=opt.nesterov)
  raise ValueError(f"config.optimizer.name={opt.name!r}; valid choices: {list(OPTIMIZERS)}")


def make_optimizer(opt, num_train_steps: int):
  """(optax transformation, schedule) for `config.optimizer`."""
  schedule = make_schedule(opt, num_train_steps)
  scale = opt.get("recurrent_lr_scale", 1.0)
  if not scale > 0:
    raise ValueError(f"config.optimizer.recurrent_lr_scale={scale!r}; must be > 0")
  decays = opt.name == "adamw" and opt.weight_decay
  if scale == 1.0 and not decays:
    tx = _base(opt, schedule, opt.weight_decay)
  else:
    scaled = lambda step: scale * schedule(step)
    names = tuple(opt.get("recurrent_params", RECURRENT_PARAMS))
    tx = optax.multi_transform({"other": _base(opt, schedule, opt.weight_decay),
                                "recurrent": _base(opt, scaled, 0.0)},
                               lambda params: param_groups(params, names))
  if opt.clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx)
  return tx, schedule
