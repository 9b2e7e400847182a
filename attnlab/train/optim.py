"""Optimizers and learning-rate schedules from `config.optimizer`.

  name          adam | adamw | sgd (with `momentum`, Nesterov optional)
  schedule      constant | warmup_cosine | rsqrt (Vaswani et al.: lr * min(s^-0.5, s w^-1.5) * sqrt(w),
                which peaks at `learning_rate` after `warmup_steps`)
  schedule_steps
                the length of warmup_cosine, at least: the cosine decays to 0 at
                max(schedule_steps, num_train_steps), so a run's rate at step s does not depend on a
                cap up to schedule_steps, and no run trains on at rate 0 past it; None: the run's
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

The optimizer state carries learning_rate, warmup_steps, schedule_steps, clip_norm and weight_decay
(`HYPERPARAMS`, optax.inject_hyperparams), read at every update: runs that differ only in them and
in seed (a population) share one transformation and train as one program, each with its own.
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
  """The number of steps the schedule's shape depends on (warmup_cosine: max(schedule_steps,
  num_train_steps), so the cosine never ends before the run does), or None when it does not depend
  on the run's length (constant, rsqrt)."""
  if opt.schedule != "warmup_cosine":
    return None
  return max(opt.get("schedule_steps") or 0, num_train_steps)


# The scalars of config.optimizer that the optimizer state carries (optax.inject_hyperparams):
# each run's own values, so runs that differ only in them (and in seed) train as one program, a
# population (`attnlab.train.config.POPULATION_FIELDS`). schedule_steps is held resolved: the
# warmup_cosine length (`schedule_length`), 0 for the schedules that have none.
HYPERPARAMS = ("learning_rate", "warmup_steps", "schedule_steps", "clip_norm", "weight_decay")


def hyperparams(opt, num_train_steps: int) -> dict:
  """The values of HYPERPARAMS for `config.optimizer` (what a run's optimizer state starts with)."""
  return {"learning_rate": float(opt.learning_rate), "warmup_steps": int(opt.warmup_steps),
          "schedule_steps": int(schedule_length(opt, num_train_steps) or 0),
          "clip_norm": float(opt.clip_norm or 0.0), "weight_decay": float(opt.weight_decay)}


def structure(opt) -> tuple:
  """What fixes the optimizer state's structure beyond its name and schedule: clipping on or off,
  AdamW's weight decay on or off. Runs of one population share it."""
  return (("clips", bool(opt.clip_norm)),
          ("decays", opt.name == "adamw" and bool(opt.weight_decay)))


class Schedule:
  """step -> learning rate of `config.optimizer`'s schedule; `.of(hp)`: the same schedule with the
  hyper-parameters `hp` (HYPERPARAMS: numbers, or one population member's injected arrays)."""

  def __init__(self, name: str, hp: dict):
    if name not in SCHEDULES:
      raise ValueError(f"config.optimizer.schedule={name!r}; valid choices: {list(SCHEDULES)}")
    self.name, self.hp = name, hp

  def of(self, hp: dict) -> "Schedule":
    return Schedule(self.name, hp)

  def __call__(self, step):
    # The formulas of optax's linear, cosine and joined schedules, written so that every
    # hyper-parameter may be a traced array (optax's check their arguments in Python).
    lr, warmup = self.hp["learning_rate"], self.hp["warmup_steps"]
    if self.name == "rsqrt":
      w = jnp.maximum(warmup, 1).astype(jnp.float32)
      s = jnp.maximum(step, 1).astype(jnp.float32)
      return lr * jnp.sqrt(w) * jnp.minimum(s**-0.5, s * w**-1.5)
    ramp = (0.0 - lr) * (1 - jnp.clip(step, 0, warmup) / jnp.maximum(warmup, 1)) + lr
    if self.name == "constant":
      return jnp.where(step < warmup, ramp, lr)
    decay = jnp.maximum(self.hp["schedule_steps"], warmup + 1) - warmup  # warmup_cosine
    count = jnp.minimum(step - warmup, decay)
    return jnp.where(step < warmup, ramp, lr * (0.5 * (1 + jnp.cos(jnp.pi * count / decay))))


def make_schedule(opt, num_train_steps: int) -> Schedule:
  """step -> learning rate; warmup_cosine spans `schedule_length(opt, num_train_steps)` steps."""
  return Schedule(opt.schedule, hyperparams(opt, num_train_steps))


def clip(grads, clip_norm):
  """The gradients `make_optimizer`'s transformation passes on after its clipping step (clip_norm
  None or 0: none; an array: a population member's injected clip_norm)."""
  if clip_norm is None or (isinstance(clip_norm, (int, float)) and not clip_norm):
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
  """(optax transformation, schedule) for `config.optimizer`.

  The transformation is optax.inject_hyperparams of the chain (clipping, then the optimizer of
  each parameter group): its state is InjectStatefulHyperparamsState(count, hyperparams,
  hyperparams_states={}, inner_state), `hyperparams` holding HYPERPARAMS as float32 / int32
  scalars and `inner_state` the state of the chain alone (the whole state of runs saved before
  hyper-parameters were injected: `attnlab.train.checkpoints` restores those). Every update reads
  the learning rate, schedule, clipping and weight decay from the state, so the runs of a
  population (`set_hyperparams`) share one transformation and one compiled step.
  """
  schedule = make_schedule(opt, num_train_steps)
  scale = opt.get("recurrent_lr_scale", 1.0)
  if not scale > 0:
    raise ValueError(f"config.optimizer.recurrent_lr_scale={scale!r}; must be > 0")
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"config.optimizer.name={opt.name!r}; valid choices: {list(OPTIMIZERS)}")
  names = tuple(opt.get("recurrent_params", RECURRENT_PARAMS))
  clips, decays = (value for _, value in structure(opt))

  def chain(learning_rate, warmup_steps, schedule_steps, clip_norm, weight_decay):
    sched = schedule.of(dict(learning_rate=learning_rate, warmup_steps=warmup_steps,
                             schedule_steps=schedule_steps))
    if scale == 1.0 and not decays:
      tx = _base(opt, sched, weight_decay)
    else:
      scaled = lambda step: scale * sched(step)
      tx = optax.multi_transform({"other": _base(opt, sched, weight_decay),
                                  "recurrent": _base(opt, scaled, 0.0)},
                                 lambda params: param_groups(params, names))
    if clips:
      tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx

  injected = optax.inject_hyperparams(chain, hyperparam_dtype=jnp.float32)
  return injected(**hyperparams(opt, num_train_steps)), schedule


def injected_hyperparams(opt_state):
  """The hyper-parameters an optimizer state carries (`make_optimizer`), or None (another state)."""
  return getattr(opt_state, "hyperparams", None)


def set_hyperparams(opt_state, hp: dict):
  """`opt_state` carrying the hyper-parameters `hp` (HYPERPARAMS, e.g. `hyperparams(opt, n)` of one
  population member), each with the dtype the state holds."""
  held = opt_state.hyperparams
  return opt_state._replace(hyperparams={k: jnp.asarray(hp[k], held[k].dtype) for k in held})


def with_injected(inner_state, hp: dict, step):
  """The state `make_optimizer` builds around `inner_state`, the state of a run saved before its
  hyper-parameters were injected: `hp` (HYPERPARAMS, from the run's config), count = its step."""
  return optax.InjectStatefulHyperparamsState(
      count=jnp.array(step, jnp.int32), hyperparams={  # a copy: the step is donated apart
          k: jnp.asarray(v, jnp.float32 if isinstance(v, float) else jnp.int32)
          for k, v in hp.items()},
      hyperparams_states={}, inner_state=inner_state)
