"""Length-generalisation part: trained models evaluated at multiples of their training length.

Every run of the long-range and learning-cost parts on a task of `c.generalisation.tasks` is
restored (attnlab.load_run) and evaluated on held-out test sequences (the test split) at
factor x its training length for each factor of `c.generalisation.factors` (adding: a longer
sequence; copy: a longer delay), with the training code's eval step and metrics. A Transformer with
learned positions cannot read positions beyond its table: that cell says "positions forbid it".

Result: {"factors": [...], "points": [{"task", "model", "length", "seed", "workdir",
  "by_factor": {factor: {"eval_score", "eval_loss"} | "positions forbid it"}}]}.
"""
import jax
import ml_collections

from attnlab import data, tasks
from attnlab.analysis.runs import load_run
from attnlab.comparison.common import _log
from attnlab.train import config as cfg_lib
from attnlab.train import losses
from attnlab.train.steps import make_eval_step

FORBIDDEN = "positions forbid it"


def _positions_forbid(model, length: int) -> bool:
  return getattr(model, "positional", None) == "learned" and length > getattr(model, "max_len", length)


def evaluate_at(run, field: str, length: int, num_sequences: int, batch_size: int, cache: dict):
  """eval metrics of a restored run on num_sequences test sequences with `field` set to `length`,
  or FORBIDDEN. `cache` keeps one jitted eval step per (model config, task config)."""
  config = cfg_lib.apply_overrides(ml_collections.ConfigDict(run.config.to_dict()), {field: length})
  params, spec = cfg_lib.task_params(config), cfg_lib.task_spec(config)
  batch = tasks.generate(config.task.name, num_sequences, seed=0, start=data.split_start("test"), **params)
  batch = {k: v for k, v in batch.items() if v.dtype != object}
  if _positions_forbid(run.model, batch["inputs"].shape[1]):
    return FORBIDDEN
  key = (run.config.model.to_json(), config.task.to_json())
  if key not in cache:
    cache[key] = jax.jit(make_eval_step(run.model, spec))
  total = None
  for i in range(0, num_sequences, batch_size):
    total = losses.add_sums(total, cache[key](run.params, {k: v[i:i + batch_size] for k, v in batch.items()}))
  summary = losses.summarize(total)
  return {"eval_score": summary["score"], "eval_loss": summary["loss"]}


def run_generalisation(rows: list, c) -> dict:
  """rows: trained runs (task, model, length, seed, workdir) of the long-range / learning-cost parts."""
  g = c.generalisation
  out = {"factors": list(g.factors), "points": []}
  cache = {}
  for row in rows:
    if row["task"] not in g.tasks:
      continue
    field = c.get("length_fields", {}).get(row["task"], "task.seq_len")
    _log(f"== generalisation {row['task']} {row['model']} T={row['length']} seed={row['seed']}")
    run = load_run(row["workdir"], "last")
    by_factor = {str(f): evaluate_at(run, field, int(f * row["length"]), g.num_sequences, g.batch_size, cache)
                 for f in g.factors}
    out["points"].append({k: row[k] for k in ("task", "model", "length", "seed", "workdir")}
                         | {"by_factor": by_factor, "part": row.get("part", "long_range")})
  return out
