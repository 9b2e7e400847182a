"""Checkpoints with orbax `CheckpointManager`: the last k steps and the best one, resumable.

Layout of a workdir:
  checkpoints/<step>/{state, data, meta}   the last `config.checkpoint.keep` saves
  best/<step>/{state, data, meta}          the save with the best `config.checkpoint.best_metric`
  config.json                              the run's config, checked when the run resumes
`state` is the TrainState (params and optimizer state, restored with the shardings asked for),
`data` the input iterator's state (so a resumed run sees the same batches), `meta` the step's
metrics and the run's config (so a checkpoint copied elsewhere still says what it is). Saves are asynchronous by default: training continues while orbax writes.
A step is saved to checkpoints/ first, then to best/: a run killed between the two has best/
repaired from the kept checkpoints when it is rerun (`Checkpointer.repair_best`). A best/ whose
meta cannot be read stops the run with the file's name instead of being replaced unseen.

Why two managers and not one with orbax's preservation policy (orbax 0.12.8:
`CheckpointManagerOptions(preservation_policy=AnyPreservationPolicy([LatestN(k), BestN(...)]))`,
which would make best/ and its repair unnecessary): checked, not yet switched, because
(1) BestN sorts by `get_metric_fn` with Python's sorted(): a NaN eval metric (an exploding run,
which on_nonfinite='record' keeps training) has no order, so it can be kept as the best; ours
never counts a non-finite value (`_is_better`); (2) BestN keeps every step without metrics
unless keep_checkpoints_without_metrics=False (saves between evaluations: SIGTERM, solved,
checkpoint_every), a setting to get right with LatestN; (3) readers of best/ (`restore_numpy`
'best', load_run, `better_than_best`, analysis.runs, kill_probe and 31 test assertions on the
layout) would need a second path for old workdirs (checkpoints/ + best/). A switch is one manager
per run and no repair; it needs (1) mapped to -inf and (3) kept readable.
"""
import logging

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from attnlab import files
from attnlab.errors import Fault
from attnlab.train import optim

LAST, BEST = "checkpoints", "best"
# What orbax logs (as warnings, through absl) for every manager opened read-only: this module opens
# one for each read of a run (resume checks, load_run, latest_meta), dozens a run.
READ_ONLY_NOTES = ("Given directory is read only", "read_only=True, setting save_interval_steps")


class _ReadOnlyNotes(logging.Filter):
  """Drops orbax's read-only notes from the 'absl' logger (the command line and notebooks alike);
  every other orbax record passes."""

  def filter(self, record) -> bool:
    return not ("/orbax/" in record.pathname
                and any(note in record.getMessage() for note in READ_ONLY_NOTES))


if not any(isinstance(f, _ReadOnlyNotes) for f in logging.getLogger("absl").filters):
  logging.getLogger("absl").addFilter(_ReadOnlyNotes())


class CorruptCheckpointError(Fault, RuntimeError):
  pass


def latest_step_in(workdir: str, which: str = LAST):
  """The last step saved in `workdir`/`which` (checkpoints or best), or None (reads the directory only)."""
  steps = [int(d) for d in files.listdir(files.join(workdir, which)) if d.isdigit()]
  return max(steps, default=None)


def checkpoint_path(workdir: str, step: int) -> str:
  """Where the kept checkpoint of `step` lies: <workdir>/checkpoints/<step>."""
  return files.join(workdir, LAST, str(step))


def latest_meta(workdir: str) -> dict:
  """The metadata (metrics, solving, config) of the run's latest checkpoint; {} if it has none."""
  step = latest_step_in(workdir)
  if step is None:
    return {}
  manager = _manager(files.join(files.absolute(workdir), LAST), keep=None, async_save=False,
                     read_only=True)
  try:
    return read_meta(manager, step)
  finally:
    manager.close()


def _manager(directory, keep: int, async_save: bool, read_only: bool = False):
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                         create=not read_only, read_only=read_only)
  handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _save_args(state, data_state, meta):
  return ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
                            meta=ocp.args.JsonSave(meta))


def read_meta(manager, step: int) -> dict:
  """The meta item of `step`; CorruptCheckpointError naming its folder if it cannot be read."""
  path = files.join(str(manager.directory), str(step), "meta")
  try:
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:  # orbax raises many types for missing or unreadable files
    meta = e
  if not isinstance(meta, dict):
    why = f"{type(meta).__name__}: {meta}" if isinstance(meta, Exception) else "not a JSON object"
    raise CorruptCheckpointError(f"{path} cannot be read ({why}). Nothing was changed.")
  return meta


def _is_better(value, best, mode):
  if value is None or not np.isfinite(value):
    return False
  return best is None or (value > best if mode == "max" else value < best)


class Checkpointer:
  """Saves and restores a run's state; keeps the last k checkpoints and the best one."""

  def __init__(self, workdir: str, keep: int = 3, best_metric: str = "eval_score",
               best_mode: str = "max", async_save: bool = True, config_json: dict = None):
    self.workdir = files.absolute(workdir)
    self.config_json = config_json or {}
    self.best_metric, self.best_mode = best_metric, best_mode
    self.last = _manager(files.join(self.workdir, LAST), keep, async_save)
    self.best = _manager(files.join(self.workdir, BEST), 1, async_save)
    self.best_value = None
    best_step = self.best.latest_step()
    if best_step is not None:
      try:
        self.best_value = read_meta(self.best, best_step).get(best_metric)
      except CorruptCheckpointError as e:  # never replace a best whose value is unknown
        raise CorruptCheckpointError(
            f"{e} It holds the run's best checkpoint; move {files.join(self.workdir, BEST)} aside "
            "to continue (best/ is then rebuilt from the kept checkpoints).") from e
      for orphan in [s for s in self.best.all_steps() if s != best_step]:
        self.best.delete(orphan)  # a kill after best/N was committed, before the older one went

  def latest_step(self):
    return self.last.latest_step()

  def save(self, step: int, state, data_state: dict, metrics: dict = None):
    """Saves `step` (skips a step that is already saved); also as best when `metrics` improve it."""
    meta = {"step": int(step), **(metrics or {}), "config": self.config_json}
    if step not in self.last.all_steps():
      self.last.save(step, args=_save_args(state, data_state, meta))
    value = (metrics or {}).get(self.best_metric)
    if _is_better(value, self.best_value, self.best_mode):
      self.best_value = value
      self.best.save(step, args=_save_args(state, data_state, meta))

  def repair_best(self, abstract_state):
    """Saves as best the kept checkpoint whose metric beats best/'s, if any (a run killed after
    checkpoints/N but before best/N, or a best/ moved aside); returns its step, else None."""
    found, value = None, self.best_value
    for step in self.last.all_steps():
      try:
        candidate = read_meta(self.last, step).get(self.best_metric)
      except CorruptCheckpointError:  # restoring the latest step reports its damage
        continue
      if _is_better(candidate, value, self.best_mode):
        found, value = step, candidate
    if found is None:
      return None
    state, data_state, meta = self.restore(abstract_state, found)
    self.best_value = value
    self.best.save(found, args=_save_args(state, data_state, meta))
    return found

  def wait(self):
    self.last.wait_until_finished()
    self.best.wait_until_finished()

  def restore(self, abstract_state, step: int = None):
    """(state, data_state, meta) of `step` (default: the latest); None if there is no checkpoint.

    Checkpoints saved before TrainState had model_state, or before the optimizer state carried
    its hyper-parameters (`optim.make_optimizer`), restore too: the missing parts are rebuilt
    (model_state {}, the hyper-parameters from the run's config with count = the step)."""
    step = self.last.latest_step() if step is None else step
    if step is None:
      return None
    if not hasattr(abstract_state, "opt_state"):  # any other pytree: restored as it is
      return restore_items(self.last, step, ocp.args.StandardRestore(abstract_state))
    fields = {k: getattr(abstract_state, k) for k in ("step", "params", "opt_state", "model_state")}
    saved = self._saved_fields(step)
    no_model_state = not jax.tree.leaves(fields["model_state"]) and "model_state" not in saved
    if no_model_state:  # a model without one
      del fields["model_state"]
    injected = optim.injected_hyperparams(fields["opt_state"]) is not None
    not_injected = injected and "hyperparams" not in saved.get("opt_state", {"hyperparams": 1})
    if not_injected:
      fields["opt_state"] = fields["opt_state"].inner_state
    if not (no_model_state or not_injected):
      return restore_items(self.last, step, ocp.args.StandardRestore(abstract_state))
    state, data, meta = restore_items(self.last, step, ocp.args.StandardRestore(fields))
    if no_model_state:
      state["model_state"] = {}
    if not_injected:
      config = self.config_json or meta.get("config") or {}
      hp = optim.hyperparams(ml_collections.ConfigDict(config["optimizer"]),
                             config["num_train_steps"])
      state["opt_state"] = optim.with_injected(state["opt_state"], hp, state["step"])
    return abstract_state.replace(**state), data, meta

  def _saved_fields(self, step) -> dict:
    """The saved state's tree (metadata only), or {"model_state": ..., "opt_state": ...} standing
    for a full state when the metadata cannot be read (the full restore then reports the damage)."""
    try:
      tree = self.last.item_metadata(step)["state"].tree
      return tree if isinstance(tree, dict) else {}
    except Exception:  # unreadable metadata: let the full restore report the damage
      return {"model_state": None}

  def close(self):
    self.wait()
    self.last.close()
    self.best.close()


def restore_items(manager, step, state_args):
  """Restores all items of `step`; a damaged checkpoint raises CorruptCheckpointError naming it."""
  path = files.join(str(manager.directory), str(step))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=state_args, data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()))
  except Exception as e:  # orbax raises many types for missing or unreadable files
    others = [s for s in manager.all_steps() if s != step]
    raise CorruptCheckpointError(
        f"checkpoint {path} cannot be restored ({type(e).__name__}: {e}). Nothing was changed. "
        f"Other saved steps: {others or 'none'}; move the damaged directory aside to resume from "
        "an earlier one.") from e
  return restored["state"], restored["data"], restored["meta"]


def saved_shapes(workdir: str):
  """The shapes and dtypes of the last checkpoint's state (its metadata: no array is read)."""
  manager = _manager(files.join(files.absolute(workdir), LAST), keep=None, async_save=False,
                     read_only=True)
  try:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoints in {files.join(workdir, LAST)}")
    return manager.item_metadata(step)["state"].tree
  finally:
    manager.close()


def better_than_best(workdir: str, best_metric: str, best_mode: str):
  """(best/'s step, the kept checkpoint whose `best_metric` beats it or None), read-only: what
  `Checkpointer.repair_best` would save as best. A step whose meta cannot be read is skipped."""
  best_step, best_value = latest_step_in(workdir, BEST), None
  if best_step is not None:
    manager = _manager(files.join(files.absolute(workdir), BEST), None, False, read_only=True)
    try:
      best_value = read_meta(manager, best_step).get(best_metric)
    except CorruptCheckpointError:  # restoring best/ reports (or passes over) its damage
      return best_step, None
    finally:
      manager.close()
  manager = _manager(files.join(files.absolute(workdir), LAST), None, False, read_only=True)
  found = None
  try:
    for step in manager.all_steps():
      try:
        value = read_meta(manager, step).get(best_metric)
      except CorruptCheckpointError:
        continue
      if _is_better(value, best_value, best_mode) and (best_step is None or step > best_step):
        found, best_value = step, value
  finally:
    manager.close()
  return best_step, found


def _restore_numpy_step(manager, step):
  cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  try:
    metadata = manager.item_metadata(step)["state"]
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                            metadata.tree, is_leaf=lambda m: hasattr(m, "shape"))
  except Exception as e:  # pylint: disable=broad-except  (metadata missing or garbled)
    path = files.join(str(manager.directory), str(step))
    raise CorruptCheckpointError(f"checkpoint {path} cannot be restored ({type(e).__name__}: "
                                 f"{e}). Nothing was changed.") from e
  state, _, meta = restore_items(manager, step, ocp.args.StandardRestore(abstract))
  return jax.device_get(state), meta


def restore_numpy(workdir: str, which="last", warn=None):
  """(state as NumPy arrays on the host, meta, step) of a run, on any hardware and device count.

  which: 'last', 'best', or an int step (looked up among the last checkpoints). For 'last' and
  'best' a step that cannot be restored (a run killed while saving it, damaged files) is passed
  over for the newest intact one, and warn(message) names it; nothing on disk is changed.
  """
  directory = files.join(files.absolute(workdir), BEST if which == "best" else LAST)
  if not files.is_dir(directory):
    raise FileNotFoundError(f"no checkpoints in {directory}")
  manager = _manager(directory, keep=None, async_save=False, read_only=True)
  try:
    steps = sorted(manager.all_steps())
    if which not in ("last", "best"):
      if int(which) not in steps:
        raise FileNotFoundError(f"step {which!r} not found in {directory}; saved steps: {steps}")
      return (*_restore_numpy_step(manager, int(which)), int(which))
    if not steps:
      raise FileNotFoundError(f"step {which!r} not found in {directory}; saved steps: []")
    damaged = []
    for step in reversed(steps):
      try:
        state, meta = _restore_numpy_step(manager, step)
      except CorruptCheckpointError as e:
        damaged.append((f"checkpoint {files.join(directory, str(step))}", e))
        continue
      if damaged and warn is not None:
        warn(f"{', '.join(name for name, _ in damaged)} cannot be restored: loaded step {step}, "
             f"the newest intact one in {directory} (nothing was changed)")
      return state, meta, step
    raise CorruptCheckpointError(f"no checkpoint in {directory} can be restored: "
                                 f"{'; '.join(str(e) for _, e in damaged)}")
  finally:
    manager.close()
