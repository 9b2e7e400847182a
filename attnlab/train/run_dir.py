"""A run's workdir keeps its config as `config.json`; a resumed run must match it.

Only `config.RESUMABLE_FIELDS` (steps, logging and checkpoint cadence, data location) may differ
between a run and its continuation: anything else would mix two experiments in one workdir. A
workdir claims its config only once it holds a checkpoint: a run that died before its first
checkpoint left nothing to continue, so any config may start there. A field
added to attnlab later (`config.ADDED_FIELDS`) that is missing from an old config.json counts as
having the value that keeps the old behaviour. A warmup_cosine schedule keeps its length
(`optim.schedule_length`): raising num_train_steps alone would change the learning rate of the
steps still to come, so it is refused unless optimizer.schedule_steps keeps the old length.
Every checkpoint's meta holds a copy of the config it was saved with: a config.json that is missing
or empty beside a checkpoint is compared through that copy (and then written again), never skipped.
"""
import json
import sys

import jax
import ml_collections

from attnlab import files
from attnlab.train.checkpoints import latest_meta, latest_step_in
from attnlab.train import config as cfg_lib
# flatten is also imported from here by the comparison and catalog modules
from attnlab.train.config import ADDED_FIELDS, RESUMABLE_FIELDS, flatten

SCHEDULE_STEPS = "optimizer.schedule_steps"  # compared by the schedule length it gives

CONFIG_FILE = "config.json"


def config_to_json(config) -> dict:
  """A JSON-safe dict of the config (tuples become lists)."""
  return json.loads(json.dumps(config.to_dict(), default=str))


def _read_json(path: str) -> dict:
  """The saved config at `path`; ValueError naming the file if it is not readable JSON."""
  try:
    return json.loads(files.read_text(path))
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is damaged ({e}); each checkpoint's meta holds a copy of the run's "
                     "config: restore the file from it, or use a new --workdir") from None


def read_config(workdir: str):
  """The ConfigDict saved in `workdir`, or None if there is none."""
  path = files.join(workdir, CONFIG_FILE)
  if not files.exists(path):
    return None
  return ml_collections.ConfigDict(_read_json(path))


def _same(a, b) -> bool:
  return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)  # NaN


def _schedule_length(flat: dict):
  """The warmup_cosine length of a flattened config (optim.schedule_length), None for others."""
  if flat.get("optimizer.schedule") != "warmup_cosine":
    return None
  return max(flat.get(SCHEDULE_STEPS) or 0, flat.get("num_train_steps"))


def _check_schedule_length(workdir: str, old: dict, new: dict):
  """ValueError if the new config would stretch or shrink the run's warmup_cosine schedule."""
  before, after = _schedule_length(old), _schedule_length(new)
  if before != after:
    raise ValueError(
        f"workdir {workdir} holds a warmup_cosine run whose schedule spans {before} steps; this "
        f"config's spans {after} (num_train_steps={new.get('num_train_steps')}, "
        f"optimizer.schedule_steps={new.get(SCHEDULE_STEPS)}), which would change the learning "
        f"rate of the steps still to come; train the longer schedule in a new --workdir.")


def check_resumable_config(workdir: str, config):
  """Writes config.json into a new workdir; refuses a workdir whose config differs in a fixed field.

  Without a checkpoint in `workdir` its config.json is only replaced (nothing there to continue).
  """
  check_config_matches(workdir, config)
  if jax.process_index() == 0:
    files.makedirs(workdir)
    files.write_text(files.join(workdir, CONFIG_FILE),
                     json.dumps(config_to_json(config), indent=1, sort_keys=True))


def _checkpointed_config(workdir: str, path: str) -> dict:
  """The config saved with the latest checkpoint, for a config.json that is missing or empty."""
  step = latest_step_in(workdir)
  try:
    copy = latest_meta(workdir).get("config")
  except Exception as e:  # pylint: disable=broad-except  (any damage: the same refusal)
    copy, why = None, f" ({type(e).__name__})"
  else:
    why = ""
  if not copy:
    raise ValueError(f"{path} is missing and checkpoint {step}'s copy of the config cannot be "
                     f"read{why}; the run cannot be checked against it: use a new --workdir")
  print(f"attnlab: {path} is missing or empty; comparing with the copy saved in checkpoint {step}",
        file=sys.stderr)
  return copy


ON_DEVICE = "data.on_device"


def _keep_the_runs_stream(config, old: dict, new: dict):
  """config.data.on_device='auto' continuing a checkpointed run takes the training stream the run
  started with (a run from before the field existed drew it on the host), so resuming never
  switches streams; an explicit True or False must match it. Sets config (and `new`) to it."""
  if new.get(ON_DEVICE) != "auto" or ON_DEVICE not in old:
    return
  resolved = cfg_lib.data_on_device(config)
  started = resolved if old[ON_DEVICE] == "auto" else old[ON_DEVICE] is True
  if started != resolved:
    config.data.on_device = started
  new[ON_DEVICE] = old[ON_DEVICE]


def check_config_matches(workdir: str, config):
  """ValueError if `workdir` holds a checkpointed run that `config` may not continue.

  Writes nothing to disk. The run's config is config.json, or the latest checkpoint's copy when
  config.json is missing or empty (deleted by hand, or a disk that filled while it was written).
  config.data.on_device='auto' is set to the stream the run started with (_keep_the_runs_stream).
  """
  new = config_to_json(config)
  path = files.join(workdir, CONFIG_FILE)
  if latest_step_in(workdir) is not None:
    present = files.exists(path) and files.read_text(path).strip()
    old = _read_json(path) if present else _checkpointed_config(workdir, path)
    a, b = flatten(old), flatten(new)
    a.update({k: v for k, v in ADDED_FIELDS.items() if k not in a and k in b})
    _keep_the_runs_stream(config, a, b)
    changed = sorted(k for k in set(a) | set(b) if not _same(a.get(k), b.get(k))
                     and k not in RESUMABLE_FIELDS and k != SCHEDULE_STEPS)
    if changed:
      details = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:10])
      raise ValueError(
          f"workdir {workdir} holds a run with a different config ({details}). Only "
          f"{', '.join(RESUMABLE_FIELDS)} may change when resuming; use a new --workdir.")
    _check_schedule_length(workdir, a, b)
