"""Checkpoints with one orbax `CheckpointManager`: the last k steps and the best one, resumable.

Layout of a workdir:
  checkpoints/<step>/{state, data, meta, metrics}  the last `config.checkpoint.keep` saves and
                                                   the best by `config.checkpoint.best_metric`
  config.json                                      the run's config, checked when it resumes
`state` is the TrainState (params and optimizer state, restored with the shardings asked for),
`data` the input iterator's state (so a resumed run sees the same batches), `meta` the step's
metrics and the run's config (so a checkpoint copied elsewhere still says what it is), `metrics`
orbax's: {best_metric: value, "step": step}, only when the value is finite. Saves are
asynchronous by default: training continues while orbax writes.

What is kept is orbax's preservation policy, AnyPreservationPolicy([LatestN(keep), BestN(n=1,
keep_checkpoints_without_metrics=False)]): saves without an evaluation (SIGTERM, solved,
checkpoint_every between evaluations) are kept only while they are among the latest; the BestN key
(`_rank`) puts a missing or non-finite value below every finite one (BestN sorts with sorted(),
where NaN has no order; on_nonfinite='record' keeps training through NaN) and a tie to the earlier
step. Orbax deletes the steps a save replaces only after that save is committed, so a SIGKILL at
any moment leaves the best step on disk: `best_step` reads it from the stored metrics, never stale,
and nothing needs repairing. A step's metrics file that cannot be read stops the run naming it.

Workdirs saved before (checkpoints/ without orbax metrics + best/, one manager each) still load
and resume: readers rank their steps by the value in `meta`, best/ included; a resumed one goes on
in the one manager, best/ is read and never written (rewriting it, or adding metrics files to
committed steps, would reopen the kill windows this layout removed), and a best that lies only in
checkpoints/ (killed between the two saves) is kept by a CustomSteps entry while the run is open.

Measured (benchmarks/checkpoints.py, benchmarks/results/checkpoints_cpu.json: adding LSTM T=20,
40 steps, eval and checkpoint every 2, 5 alternating repeats in one process on 2 loaded CPU
cores): median wall 8.5 s with one manager vs 10.3 s with the two it replaced, the time saves
block training about equal (3.2 s vs 3.1 s), 20% fewer bytes written (15.7 MB vs 19.6 MB: a new
best is no longer saved twice), the same bytes kept on disk.
"""
import json
import logging
import math

import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as pp

from attnlab import files
from attnlab.errors import Fault
from attnlab.train import optim

LAST = "checkpoints"
BEST = "best"  # the second manager of workdirs saved before one kept both: read, never written
METRICS = "metrics"  # orbax's item (and file) of the metrics saved with a step
# What orbax logs (as warnings, through absl) for every manager opened read-only (this module opens
# one for each read of a run: resume checks, load_run, latest_meta; dozens a run) and for every
# save without metrics (saves between evaluations: the policy's LatestN keeps them).
READ_ONLY_NOTES = ("Given directory is read only", "read_only=True, setting save_interval_steps",
                   "did not provide metrics")


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


def _manager(directory, keep: int, async_save: bool, read_only: bool = False, best=None,
             protect=None):
  """An orbax manager of `directory`. best=(metric, mode): it keeps the last `keep` steps and the
  step with the best metric (orbax's LatestN and BestN, the metric stored with each step: `save`),
  and any step in `protect`; best=None: the last `keep` (how workdirs with best/ were saved).
  A step's metrics file that cannot be read raises CorruptCheckpointError naming it."""
  policy = None
  if best is not None and not read_only:
    policy = pp.AnyPreservationPolicy([
        pp.LatestN(keep),
        pp.BestN(get_metric_fn=lambda m: _rank(m, *best), n=1,
                 keep_checkpoints_without_metrics=False),
        pp.CustomSteps(protect or [])])
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if policy else keep, preservation_policy=policy,
      best_fn=policy and (lambda m: _rank(m, *best)), enable_async_checkpointing=async_save,
      create=not read_only, read_only=read_only)
  handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler(),
              "meta": ocp.JsonCheckpointHandler()}
  try:
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)
  except Exception as e:  # orbax reads every step's metrics file when it opens
    for step in [d for d in files.listdir(directory) if d.isdigit()]:
      path = files.join(directory, step, METRICS, METRICS)
      try:
        json.loads(files.read_text(path)) if files.exists(path) else None
      except Exception as damage:  # pylint: disable=broad-except
        raise CorruptCheckpointError(f"{path} cannot be read ({type(damage).__name__}: {damage})."
                                     " Nothing was changed.") from e
    raise


def _finite(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _rank(metrics, best_metric: str, best_mode: str) -> tuple:
  """Sort key of a step's metrics ({best_metric: value, "step": step}), higher is better: a
  missing or non-finite value ranks below every finite one (BestN sorts with sorted(), where NaN
  has no order), and of two equal values the earlier step ranks higher (a best is replaced only by
  a strictly better one)."""
  value = (metrics or {}).get(best_metric)
  if not _finite(value):
    return (-math.inf, 0)
  return (value if best_mode == "max" else -value, -int(metrics.get("step", 0)))


def _ranked_steps(workdir: str, best_metric: str, best_mode: str, strict: bool = False) -> list:
  """[(rank, step, folder, from_orbax)] of every saved step with a finite `best_metric`, best first.
  Its value is the metric orbax stores with the step; a step without one (saved in a workdir with
  best/, before one manager kept both) gives the value in its meta, or is passed over when that
  cannot be read (strict: an unreadable meta in best/ raises). Read-only."""
  found = []
  for folder in (LAST, BEST):
    directory = files.join(files.absolute(workdir), folder)
    if not files.is_dir(directory):
      continue
    manager = _manager(directory, None, False, read_only=True)
    try:
      for step in manager.all_steps():
        metrics = manager.metrics(step)
        from_orbax = metrics is not None
        if not from_orbax:
          try:
            metrics = {**read_meta(manager, step), "step": step}
          except CorruptCheckpointError as e:
            if strict and folder == BEST:  # never replace a best whose value is unknown
              raise CorruptCheckpointError(
                  f"{e} It holds the run's best checkpoint; move {directory} aside to continue "
                  f"(the best is then chosen among {LAST}/).") from e
            continue
        rank = _rank(metrics, best_metric, best_mode)
        if math.isfinite(rank[0]):
          found.append((rank, step, folder, from_orbax))
    finally:
      manager.close()
  return sorted(found, reverse=True)


def best_step(workdir: str, best_metric: str, best_mode: str):
  """The saved step with the best `best_metric` (a tie: the earlier step), None if no step has a
  finite one. Never stale: orbax deletes the step it replaces only after the better one is
  committed."""
  ranked = _ranked_steps(workdir, best_metric, best_mode)
  return ranked[0][1] if ranked else None


def _legacy_best_to_keep(workdir: str, best_metric: str, best_mode: str) -> list:
  """[step] when the workdir's best is a step of checkpoints/ saved without orbax metrics (a
  workdir with best/, killed after its save to checkpoints/ and before best/): the policy keeps it
  while this manager is open, as BestN cannot rank it. best/ itself is read, never written."""
  ranked = _ranked_steps(workdir, best_metric, best_mode, strict=True)
  if ranked and ranked[0][2] == LAST and not ranked[0][3]:
    return [ranked[0][1]]
  return []


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


class Checkpointer:
  """Saves and restores a run's state in one orbax manager: the last k steps and the best."""

  def __init__(self, workdir: str, keep: int = 3, best_metric: str = "eval_score",
               best_mode: str = "max", async_save: bool = True, config_json: dict = None):
    self.workdir = files.absolute(workdir)
    self.config_json = config_json or {}
    self.best_metric, self.best_mode = best_metric, best_mode
    legacy = _legacy_best_to_keep(self.workdir, best_metric, best_mode)
    if jax.process_count() > 1:  # no process creates checkpoints/ before every one has scanned it:
      # the scan opens orbax managers, which synchronise the processes, only for folders it finds
      multihost_utils.sync_global_devices("attnlab:checkpoints_scanned")
    self.last = _manager(files.join(self.workdir, LAST), keep, async_save,
                         best=(best_metric, best_mode), protect=legacy)

  def latest_step(self):
    return self.last.latest_step()

  def save(self, step: int, state, data_state: dict, metrics: dict = None):
    """Saves `step` (skips a step that is already saved); a finite `metrics[best_metric]` goes to
    orbax too, which keeps the step while it is the best."""
    meta = {"step": int(step), **(metrics or {}), "config": self.config_json}
    value = (metrics or {}).get(self.best_metric)
    ranked = {self.best_metric: value, "step": int(step)} if _finite(value) else None
    if step not in self.last.all_steps():
      self.last.save(step, args=_save_args(state, data_state, meta), metrics=ranked)

  def wait(self):
    self.last.wait_until_finished()

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


def restore_numpy(workdir: str, which="last", warn=None, best_metric: str = "eval_score",
                  best_mode: str = "max"):
  """(state as NumPy arrays on the host, meta, step) of a run, on any hardware and device count.

  which: 'last', 'best' (by best_metric and best_mode: `best_step`), or an int step (among
  checkpoints/). For 'last' and 'best' a step that cannot be restored (a run killed while saving
  it, damaged files) is passed over for the newest (next best) intact one, and warn(message) names
  it; nothing on disk is changed.
  """
  workdir = files.absolute(workdir)
  steps = sorted((int(d) for d in files.listdir(files.join(workdir, LAST)) if d.isdigit()),
                 reverse=True)
  if which == "best":
    ranked = _ranked_steps(workdir, best_metric, best_mode)
    order = [(step, folder) for _, step, folder, _ in ranked]
  elif which != "last" and int(which) not in steps:
    raise FileNotFoundError(f"step {which!r} not found in {files.join(workdir, LAST)}; saved "
                            f"steps: {sorted(steps)}")
  else:
    order = [(step, LAST) for step in steps if which == "last" or step == int(which)]
  if not order:
    raise FileNotFoundError(f"no checkpoint for step={which!r} in {workdir}")
  damaged = []
  for step, folder in order:
    manager = _manager(files.join(workdir, folder), None, False, read_only=True)
    try:
      state, meta = _restore_numpy_step(manager, step)
    except CorruptCheckpointError as e:
      if which not in ("last", "best"):
        raise
      damaged.append((f"checkpoint {files.join(workdir, folder, str(step))}", e))
      continue
    finally:
      manager.close()
    if damaged and warn is not None:
      warn(f"{', '.join(name for name, _ in damaged)} cannot be restored: loaded step {step}, "
           f"the {'newest' if which == 'last' else 'next best'} intact one in {workdir} "
           "(nothing was changed)")
    return state, meta, step
  raise CorruptCheckpointError(f"no checkpoint in {workdir} can be restored: "
                               f"{'; '.join(str(e) for _, e in damaged)}")
