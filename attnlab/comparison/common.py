"""Helpers shared by the comparison's parts: config overrides, sweep grids, rerun commands, training."""
import os
import sys

import jax
import numpy as np

from attnlab import sweep
from attnlab.analysis.flow_logging import GradientFlowLogger
from attnlab.analysis.runs import load_run
from attnlab.train import config as cfg_lib
from attnlab.train import train_seeds
from attnlab.train.run_dir import flatten


def _log(text):
  print(text, file=sys.stderr, flush=True)


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


def _train_with_flow(configs, workdirs):
  """Trains runs that differ only in seed as one vmapped program, logging gradient flow if asked."""
  hooks = [[GradientFlowLogger(c)] if c.get("log_grad_flow") else [] for c in configs]
  return train_seeds(configs, workdirs, hooks)


def _grid(**axes) -> dict:
  return {k: list(v) for k, v in axes.items()}


def _command(config_path, point, workdir, overrides: dict) -> str:
  """The command line that reruns one point on its own.

  Overrides of fields that are None in the point's config go into the config argument: a
  --config.FIELD flag cannot set a field whose value is None (ml_collections refuses its type).
  """
  path = os.path.relpath(config_path) if not os.path.relpath(config_path).startswith("..") else config_path
  config = sweep.load_config_file(config_path)(sweep.config_arg(point))
  unset = {k: v for k, v in overrides.items() if _field(config, k) is None}
  flags = " ".join(f"--config.{k}={v}" for k, v in overrides.items() if k not in unset)
  return (f"python -m experiments.main --config={path}:{sweep.config_arg({**point, **unset})} "
          f"--workdir={workdir} {flags}")


def _field(config, dotted: str):
  """config's value at a dotted path, or '' where the path is not in it (apply_overrides says so)."""
  for key in dotted.split("."):
    if not hasattr(config, "keys") or key not in config:
      return ""
    config = config[key]
  return config


def param_count(workdir: str) -> int:
  """Number of trained parameters of a run: the sum of the sizes of its restored arrays."""
  return int(sum(np.size(x) for x in jax.tree.leaves(load_run(workdir, "last").params)))
