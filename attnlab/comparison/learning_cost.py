"""Learning-cost part: training sequences each model needs to solve a task, against the length T.

For each task and model of `c.learning_cost` (`models`: one list for every task, or {task: list}),
lengths are trained shortest first, every seed of a length as one program (`train_seeds`), each
run stopping at the first evaluation that meets the task's criterion (config.stop_when_solved,
geometric eval schedule) or at the cap (num_train_steps).
Skip rule: a model whose MEDIAN over seeds is censored at T (most seeds never solved it within the
cap) is not trained at longer T; those points are recorded as "skipped: failed at shorter T".

A point: {"task", "model", "length", "status": "trained" | SKIPPED, "cap_sequences",
  "seeds": [{"seed", "solved_sequences" (None if censored), "censored", "final_wrong",
             "final_sequences", "workdir", "command"}],
  "median": sequences (None when censored), "median_censored": bool, "params": int}.
`growth_exponent(points)`: slope of log(median sequences) on log T over the solved points.
"""
import functools

import numpy as np

from attnlab import files, sweep
from attnlab.comparison.common import (_as_dict, _command, _fixed, _grid, _log, _log_seed_results,
                                       _overrides, _train_with_flow, param_count, run_concurrently)
from attnlab.train.run_dir import flatten

SKIPPED = "skipped: failed at shorter T"
# The trainer fields this part sets on every run: stop at the criterion, know the step to 10%,
# count the wrong sequences of 2560 held-out ones as Hochreiter & Schmidhuber 1997 did.
CRITERIA_FIELDS = {"stop_when_solved": True, "eval_schedule": "geometric", "final_eval_sequences": 2560}


def median_sequences(values: list) -> tuple:
  """values: sequences to solve per seed, None = censored (counts as more than the cap).
  -> (median, censored): censored when the median falls on a censored seed (median = inf)."""
  if not values:
    return float("inf"), True
  median = float(np.median([np.inf if v is None else float(v) for v in values]))
  return median, not np.isfinite(median)


def growth_exponent(lengths: list, medians: list) -> dict:
  """Least-squares slope of log(median) against log(T) over the finite medians:
  {"exponent": float | None (fewer than 2 solved points), "points": how many were fitted}."""
  pts = [(t, m) for t, m in zip(lengths, medians) if m is not None and np.isfinite(m) and m > 0]
  if len(pts) < 2:
    return {"exponent": None, "points": len(pts)}
  x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
  return {"exponent": float(np.polyfit(x, y, 1)[0]), "points": len(pts)}


def _train_point(c, task, model, length, root, train_group) -> dict:
  lc = c.learning_cost
  base = {"num_train_steps": lc.steps[task], **CRITERIA_FIELDS,
          **flatten(_as_dict(lc.get("run_overrides", {})))}
  get_config = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
  field = c.get("length_fields", {}).get(task, "task.seq_len")
  axes = _grid(model=[model], **{field: [length]}, seed=lc.seeds)
  rows = sweep.run_sweep(get_config, axes, files.join(root, "learning_cost", task), train_group=train_group)
  _log_seed_results(f"{task} {model} T={length}", rows)
  seeds = []
  for row in rows:
    point = {k: row[k] for k in axes}
    config = get_config(sweep.config_arg(point))
    seeds.append({"seed": row["seed"], "solved_sequences": row.get("solved_sequences"),
                  "solved_step": row.get("solved_step"), "censored": bool(row.get("censored")),
                  "final_wrong": row.get("final_wrong"), "final_sequences": row.get("final_sequences"),
                  "eval_score": row.get("eval_score"), "workdir": row["workdir"],
                  "command": _command(c.task_configs[task], point, row["workdir"],
                                      _overrides(c, base, config.model.name))})
  median, censored = median_sequences([s["solved_sequences"] for s in seeds])
  return {"status": "trained", "seeds": seeds, "median": None if censored else median,
          "median_censored": censored,
          "cap_sequences": lc.steps[task] * config.batch_size, "params": param_count(seeds[0]["workdir"])}


def models_of(lc, task: str) -> tuple:
  """The models trained on `task`: lc.models, or lc.models[task] when it maps tasks to models."""
  return tuple(lc.models[task] if hasattr(lc.models, "keys") else lc.models)


def _chain(c, task: str, model: str, root: str, train_group) -> list:
  """The points of one model on one task, shortest T first, skipping the T beyond a failure."""
  failed, points = False, []
  for length in sorted(c.learning_cost.lengths[task]):
    point = {"task": task, "model": model, "length": length}
    if failed:
      points.append(dict(point, status=SKIPPED, seeds=[], median=None, median_censored=None))
      continue
    _log(f"== learning cost {task} {model} T={length}")
    point.update(_train_point(c, task, model, length, root, train_group))
    points.append(point)
    failed = point["median_censored"]
  return points


def run_learning_cost(c, root: str, train_group=None) -> dict:
  """{"points": [point, ...], "exponents": {task: {model: growth_exponent}}} (see the module doc).
  The (task, model) chains run concurrently inside `common.training_slots(n)` with n > 1."""
  lc = c.learning_cost
  out = {"points": [], "exponents": {task: {} for task in lc.tasks}, "seeds": list(lc.seeds)}
  chains = [(task, model) for task in lc.tasks for model in models_of(lc, task)]
  results = run_concurrently([functools.partial(_chain, c, task, model, root,
                                                train_group or _train_with_flow)
                              for task, model in chains])
  for (task, model), points in zip(chains, results):
    out["points"] += points
    trained = [p for p in points if p["status"] == "trained"]
    out["exponents"][task][model] = growth_exponent(
        [p["length"] for p in trained], [None if p["median_censored"] else p["median"] for p in trained])
  return out


def as_rows(learning_cost: dict) -> list:
  """One row per trained seed, shaped like the long-range rows (task, model, length, seed, workdir)."""
  return [{"task": p["task"], "model": p["model"], "length": p["length"], "seed": s["seed"],
           "workdir": s["workdir"], "eval_score": s.get("eval_score")}
          for p in learning_cost["points"] for s in p["seeds"]]
