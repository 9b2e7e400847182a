"""Helpers shared by the comparison's parts: config overrides, sweep grids, rerun commands, training,
and training in threads (`training_slots`, `run_concurrently`)."""
import contextlib
import os
import sys
import threading
from concurrent import futures

import jax
import numpy as np

from attnlab import layout, sweep
from attnlab.analysis.flow_logging import GradientFlowLogger
from attnlab.train import checkpoints
from attnlab.train import config as cfg_lib
from attnlab.train import train_seeds, trainer
from attnlab.train.run_dir import flatten


def _log(text):
  sys.stderr.write(f"{text}\n")  # one write: lines from concurrent parts do not interleave
  sys.stderr.flush()


def _log_seed_results(name: str, rows: list):
  """One result line per seed of a point trained together, each naming its seed:
  '[adding lstm T=20 seed 1] solved at 16,384 sequences, eval_score 0.9912'."""
  for row in rows:
    solved = row.get("solved_sequences")
    score = row.get("eval_score")
    text = (f"solved at {solved:,} sequences" if solved is not None else
            "not solved" if row.get("censored") else "finished")
    if score is not None:
      text += f", eval_score {score:.4f}"
    _log(f"[{name} seed {row.get('seed')}] {text}")


def _overrides(c, base: dict, model: str) -> dict:
  """The flat {dotted field: value} a comparison applies to a run of `model`: `base`, then the
  comparison's run_overrides (nested dicts) and model_overrides[model]."""
  out = dict(base)
  if c is not None:
    out.update(flatten(_as_dict(c.get("run_overrides", {}))))
    model_fields = _as_dict(c.get("model_overrides", {}).get(model, {}))
    out.update({f"model.{k}": v for k, v in model_fields.items()})
  return out


def _fixed(get_config, base: dict, c=None):
  """get_config with the comparison's overrides (see `_overrides`) applied to every point."""

  def fixed(arg):
    config = get_config(arg)
    return cfg_lib.apply_overrides(config, _overrides(c, base, config.model.name))

  return fixed


def _as_dict(d) -> dict:
  return d.to_dict() if hasattr(d, "to_dict") else dict(d)


# How many trainings may run at once (`training_slots`); `_train_with_flow` holds one while it trains.
_SLOTS = {"workers": 1, "semaphore": threading.BoundedSemaphore(1)}


@contextlib.contextmanager
def training_slots(workers: int):
  """While in it, `run_concurrently` runs its calls in threads and at most `workers` trainings run at
  once (config: comparison.workers, default 1). JAX compiles and computes outside the GIL, so this
  pays where compilation dominates or cores are idle: on 2 CPU cores two copy learning-cost parts
  (3 small points each) took 141 s together against 104 s each alone; the whole default job took
  the same 6 min 54 s with 2 workers as with 1 (its adding steps already keep both cores busy), so
  every config keeps 1. Results do not depend on it: every run is its own deterministic program
  (measured: identical metrics)."""
  if not isinstance(workers, int) or workers < 1:
    raise ValueError(f"comparison.workers={workers!r}: the number of trainings at a time, an integer >= 1")
  previous = dict(_SLOTS)
  _SLOTS.update(workers=workers, semaphore=threading.BoundedSemaphore(workers))
  try:
    yield
  finally:
    _SLOTS.update(previous)


def run_concurrently(calls: list) -> list:
  """[call() for call in calls]: in this thread one after the other when one training slot is set
  (the default), else each in its own thread (a trainer there stops at SIGTERM / Ctrl-C, saving a
  checkpoint; when one call fails the others are stopped the same way and its error is raised)."""
  if _SLOTS["workers"] <= 1 or len(calls) <= 1:
    return [call() for call in calls]
  in_main = threading.current_thread() is threading.main_thread()
  with (trainer.stop_threads_on_signal() if in_main else contextlib.nullcontext(lambda: None)) as stop:
    with futures.ThreadPoolExecutor(len(calls)) as pool:
      jobs = [pool.submit(call) for call in calls]
      try:
        done, _ = futures.wait(jobs, return_when=futures.FIRST_EXCEPTION)
        if any(job.exception() is not None for job in done):
          stop()  # the others save a checkpoint at their next step and stop
        errors = [job.exception() for job in jobs if job.exception() is not None]
        if errors:  # the error that stopped the others, not their Preempted
          raise next((e for e in errors if not isinstance(e, trainer.Preempted)), errors[0])
        return [job.result() for job in jobs]
      except BaseException:
        stop()
        raise


def _train_with_flow(configs, workdirs):
  """Trains runs that differ only in seed as one program (`train_seeds`), logging gradient flow if
  asked (in a training slot: see `training_slots`)."""
  hooks = [[GradientFlowLogger(c)] if c.get("log_grad_flow") else [] for c in configs]
  with _SLOTS["semaphore"]:
    if trainer.stop_requested():
      raise trainer.Preempted(trainer.stop_requested(), 0, workdirs, saved=False)
    return train_seeds(configs, workdirs, hooks)


def _grid(**axes) -> dict:
  return {k: list(v) for k, v in axes.items()}


def _command(config_path, point, workdir, overrides: dict) -> str:
  """The command line that reruns one point on its own.

  Overrides of fields that are None in the point's config go into the config argument: a
  --config.FIELD flag cannot set a field whose value is None (ml_collections refuses its type).
  """
  path = os.path.relpath(config_path) if not os.path.relpath(config_path).startswith("..") else config_path
  path = layout.name_form(path)  # a shipped config by name: the command works from any directory
  config = sweep.load_config_file(config_path)(sweep.config_arg(point))
  unset = {k: v for k, v in overrides.items() if _field(config, k) is None}
  flags = " ".join(f"--config.{k}={v}" for k, v in overrides.items() if k not in unset)
  return (f"python -m attnlab train --config={path}:{sweep.config_arg({**point, **unset})} "
          f"--workdir={workdir} {flags}")


def _field(config, dotted: str):
  """config's value at a dotted path, or '' where the path is not in it (apply_overrides says so)."""
  for key in dotted.split("."):
    if not hasattr(config, "keys") or key not in config:
      return ""
    config = config[key]
  return config


def param_count(workdir: str) -> int:
  """Number of trained parameters of a run: the sum of the sizes of its checkpointed parameters
  (read from the checkpoint's metadata, without restoring it)."""
  params = checkpoints.saved_shapes(workdir)["params"]
  return int(sum(np.prod(m.shape, dtype=np.int64)
                 for m in jax.tree.leaves(params, is_leaf=lambda m: hasattr(m, "shape"))))
