"""Learning-cost part: training sequences each model needs to solve a task, against the length T.

For each task and model of `c.learning_cost` (`models`: one list for every task, or {task: list}),
lengths are trained shortest first, every seed of a length as one program (`train_seeds`), each
run stopping at the first evaluation that meets the task's criterion (config.stop_when_solved,
geometric eval schedule) or at the cap (num_train_steps).

Seeds. With `num_seeds` (n) every point (model, task, T) trains n seeds of its own,
survival.stable_seed(model, task, T, i) for i < n, so no seed is reused across T or models and the
points are independent samples; its runs read the data stream data_seed = stable_seed("data",
task, T): one per (task, T), shared by the seeds of the point (so they stay one vmapped program:
train_seeds needs runs that differ only in `seed`; the spread at a point is over initialisations
given that stream) and by every model at it (all models see the same sequences at a point), and
different across T. Without `num_seeds`, the older scheme: the seeds `seeds` at every T and the
configs' data_seed (a preview: points at different T are then not independent).

Statistics (attnlab/analysis/survival.py): a run never solved within the cap is right-censored at
the cap; the point's Kaplan-Meier median of sequences to solve has a 95% interval; each model's
growth exponent (slope of log KM median on log T over its trained points, a censored one at the cap
as a lower bound) has a bootstrap 95% interval; per task the models are ranked by exponent only
where the intervals separate.
Skip rule: a model whose KM median is unbounded at T (S never falls to 0.5 within the cap) is not
trained at longer T; those points are recorded as "skipped: failed at shorter T".

A point: {"task", "model", "length", "status": "trained" | SKIPPED, "cap_sequences",
  "seeds": [{"seed", "seed_index", "solved_sequences" (None if censored), "censored",
             "final_wrong", "final_sequences", "workdir", "command"}],
  "median_sequences": KM median (None when unbounded), "median_ci95": [lo, hi] (None where the
  limit lies beyond the cap), "median": = median_sequences, "median_censored": unbounded,
  "params": int}.
exponents[task][model]: {"growth_exponent", "growth_exponent_ci95", "lower_bound", "points",
  "censored_points"}; ranking[task]: survival.rank_exponents of them.
"""
import functools

from attnlab import files, sweep
from attnlab.analysis import survival
from attnlab.comparison.common import (_as_dict, _command, _fixed, _grid, _log, _log_seed_results,
                                       _overrides, _train_with_flow, param_count, run_concurrently)
from attnlab.train.run_dir import flatten

SKIPPED = "skipped: failed at shorter T"
# The trainer fields this part sets on every run: stop at the criterion, know the step to 10%,
# count the wrong sequences of 2560 held-out ones as Hochreiter & Schmidhuber 1997 did.
CRITERIA_FIELDS = {"stop_when_solved": True, "eval_schedule": "geometric", "final_eval_sequences": 2560}


def num_seeds(lc):
  """lc.num_seeds (an int >= 1), or None when the part uses the fixed `seeds` at every T."""
  n = lc.get("num_seeds")
  if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
    raise ValueError(f"learning_cost.num_seeds={n!r}: the seeds per point, an integer >= 1 "
                     "(or None to use learning_cost.seeds at every T)")
  return n


def seeds_of(lc, task: str, model: str, length: int) -> list:
  """The seeds of one point: stable_seed(model, task, T, i) for i < num_seeds, else lc.seeds."""
  n = num_seeds(lc)
  if n is None:
    return list(lc.seeds)
  return [survival.stable_seed(model, task, length, i) for i in range(n)]


def data_seed_of(lc, task: str, length: int):
  """The data stream of every run at (task, T) with num_seeds; None (the configs' own) without."""
  return None if num_seeds(lc) is None else survival.stable_seed("data", task, length)


def _train_point(c, task, model, length, root, train_group) -> dict:
  lc = c.learning_cost
  data_seed = data_seed_of(lc, task, length)
  base = {"num_train_steps": lc.steps[task], **CRITERIA_FIELDS,
          **({} if data_seed is None else {"data_seed": data_seed}),
          **flatten(_as_dict(lc.get("run_overrides", {})))}
  get_config = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
  field = c.get("length_fields", {}).get(task, "task.seq_len")
  seeds = seeds_of(lc, task, model, length)
  axes = _grid(model=[model], **{field: [length]}, seed=seeds)
  rows = sweep.run_sweep(get_config, axes, files.join(root, "learning_cost", task),
                         train_group=train_group)
  _log_seed_results(f"{task} {model} T={length}", rows)
  runs = []
  for row in rows:
    point = {k: row[k] for k in axes}
    config = get_config(sweep.config_arg(point))
    runs.append({"seed": row["seed"], "seed_index": seeds.index(row["seed"]),
                 "solved_sequences": row.get("solved_sequences"),
                 "solved_step": row.get("solved_step"), "censored": bool(row.get("censored")),
                 "final_wrong": row.get("final_wrong"), "final_sequences": row.get("final_sequences"),
                 "eval_score": row.get("eval_score"), "workdir": row["workdir"],
                 "command": _command(c.task_configs[task], point, row["workdir"],
                                     _overrides(c, base, config.model.name))})
  cap = lc.steps[task] * config.batch_size
  return {"status": "trained", "seeds": runs, "cap_sequences": cap, "data_seed": config.data_seed,
          **survival.point_statistics([s["solved_sequences"] for s in runs], cap),
          "params": param_count(runs[0]["workdir"])}


def models_of(lc, task: str) -> tuple:
  """The models trained on `task`: lc.models, or lc.models[task] when it maps tasks to models."""
  return tuple(lc.models[task] if hasattr(lc.models, "keys") else lc.models)


def _chain(c, task: str, model: str, root: str, train_group) -> list:
  """The points of one model on one task, shortest T first, skipping the T beyond a failure."""
  failed, points = False, []
  for length in sorted(c.learning_cost.lengths[task]):
    point = {"task": task, "model": model, "length": length}
    if failed:
      points.append(dict(point, status=SKIPPED, seeds=[], median=None, median_censored=None,
                         median_sequences=None, median_ci95=None))
      continue
    _log(f"== learning cost {task} {model} T={length}")
    point.update(_train_point(c, task, model, length, root, train_group))
    points.append(point)
    failed = point["median_censored"]
  return points


def run_learning_cost(c, root: str, train_group=None) -> dict:
  """{"points": [point, ...], "exponents": {task: {model: ...}}, "ranking": {task: ...},
  "num_seeds", "seeds" (the fixed seeds, or None when drawn per point)} (see the module doc).
  The (task, model) chains run concurrently inside `common.training_slots(n)` with n > 1."""
  lc = c.learning_cost
  n = num_seeds(lc)
  out = {"points": [], "exponents": {task: {} for task in lc.tasks}, "ranking": {},
         "num_seeds": n if n is not None else len(lc.seeds),
         "seeds": None if n is not None else list(lc.seeds), "seeds_reused_across_T": n is None}
  chains = [(task, model) for task in lc.tasks for model in models_of(lc, task)]
  results = run_concurrently([functools.partial(_chain, c, task, model, root,
                                                train_group or _train_with_flow)
                              for task, model in chains])
  for (task, model), points in zip(chains, results):
    out["points"] += points
    out["exponents"][task][model] = survival.model_exponent(points)
  out["ranking"] = {task: survival.rank_exponents(out["exponents"][task]) for task in lc.tasks}
  return out


def as_rows(learning_cost: dict) -> list:
  """One row per trained seed, shaped like the long-range rows (task, model, length, seed, workdir),
  with the seed's place in its point (seed_index; in results without it, its place in the list)."""
  return [{"task": p["task"], "model": p["model"], "length": p["length"], "seed": s["seed"],
           "seed_index": s.get("seed_index", i), "workdir": s["workdir"],
           "eval_score": s.get("eval_score")}
          for p in learning_cost["points"] for i, s in enumerate(p["seeds"])]
