"""Tuning part: one learning-rate and schedule sweep for every model, and one rule that picks.

For each model of `c.tuning.models`, every (schedule, learning rate) candidate is trained on
`c.tuning.task` at each of `c.tuning.lengths`, every seed of `c.tuning.seeds` (as one program),
each run stopping at the first evaluation that meets the task's criterion or at the cap
`c.tuning.steps` (the learning-cost part's CRITERIA_FIELDS). The schedules `c.tuning.schedules`
({name: optimizer fields schedule, warmup_steps, schedule_steps}) are the same for every model and
none depends on the cap; the rates `c.tuning.lrs` are one log-spaced grid for every model.

The pick rule (`candidate_key`; lower is better, compared in this order):
  1. censored: the number of lengths at which the candidate's median over seeds of the sequences
     to solve is censored (a censored seed counts as more than the cap; `median_sequences`).
  2. sequences: the sum over the lengths whose median is not censored of those medians.
  3. loss: the mean over lengths of the median over seeds of the final eval loss (`final_loss`,
     on the final_eval_sequences held-out sequences at the run's end, i.e. its solving step or
     the cap; `eval_loss` where it is missing; NaN counts as inf): breaks ties, e.g. when every
     candidate is censored.
  4. the lower learning rate, then the schedule's name.
Grid widening (`tune_model`): while the chosen rate is the lowest or highest of the model's grid,
one more rate beyond that edge (`widen`: the grid's spacing continued) is trained with every
schedule, length and seed, and the rule is applied again; after `c.tuning.max_widenings` such
steps the choice is kept and recorded as `at_edge`.

Result: {"task", "lengths", "seeds", "steps", "schedules", "outcomes": [one per (model, length,
schedule, lr, seed): solved_sequences (None if censored), censored, final_loss, eval_loss,
workdir, command], "models": {model: {"grid", "widened", "at_edge", "choice": {"schedule", "lr",
"key"}, "candidates": [summaries]}}, "tuned": {model: optimizer fields for configs/common.py TUNED}}.
"""
import functools
import math

import numpy as np

from attnlab import files, sweep
from attnlab.comparison.common import (_as_dict, _command, _fixed, _grid, _log, _overrides,
                                       _train_with_flow, run_concurrently)
from attnlab.comparison.learning_cost import CRITERIA_FIELDS
from attnlab.train.run_dir import flatten

SCHEDULE_FIELDS = ("schedule", "warmup_steps", "schedule_steps")


def _loss(outcome: dict) -> float:
  value = outcome.get("final_loss")
  value = outcome.get("eval_loss") if value is None else value
  return math.inf if value is None or not np.isfinite(value) else float(value)


def summarise(outcomes: list) -> list:
  """Outcomes of one model -> one summary per (schedule, lr): {"schedule", "lr", "lengths":
  [{"length", "median", "censored", "loss", "seeds"}, ...] shortest first, "key": candidate_key},
  sorted by key (best first). "median" is None where censored; "seeds" the sequences per seed."""
  groups = {}
  for o in outcomes:
    groups.setdefault((o["schedule"], o["lr"]), {}).setdefault(o["length"], []).append(o)
  out = []
  for (schedule, lr), by_length in groups.items():
    lengths = []
    for length, runs in sorted(by_length.items()):
      median, censored = median_sequences([r["solved_sequences"] for r in runs])
      lengths.append({"length": length, "median": None if censored else median, "censored": censored,
                      "loss": float(np.median([_loss(r) for r in runs])),
                      "seeds": [r["solved_sequences"] for r in sorted(runs, key=lambda r: r["seed"])]})
    summary = {"schedule": schedule, "lr": lr, "lengths": lengths}
    out.append(dict(summary, key=candidate_key(summary)))
  return sorted(out, key=lambda s: s["key"])


def median_sequences(values: list) -> tuple:
  """Sequences to solve per seed (None = censored, counted as more than the cap) -> (median,
  censored): censored when the median falls on a censored seed. With every censored run at the
  same cap, beyond every solved one, this is the Kaplan-Meier median (attnlab.analysis.survival)."""
  if not values:
    return float("inf"), True
  median = float(np.median([np.inf if v is None else float(v) for v in values]))
  return median, not np.isfinite(median)


def candidate_key(summary: dict) -> tuple:
  """(censored lengths, sum of the uncensored medians, mean median loss, lr, schedule): the module
  doc's rule; the smallest key wins."""
  per_length = summary["lengths"]
  censored = sum(p["censored"] for p in per_length)
  sequences = float(sum(p["median"] for p in per_length if not p["censored"]))
  loss = float(np.mean([p["loss"] for p in per_length]))
  return (censored, sequences, loss, float(summary["lr"]), summary["schedule"])


def pick(outcomes: list) -> dict:
  """The best candidate of one model's outcomes: {"schedule", "lr", "key"}."""
  if not outcomes:
    raise ValueError("tuning: no outcomes to pick from")
  best = summarise(outcomes)[0]
  return {"schedule": best["schedule"], "lr": best["lr"], "key": list(best["key"])}


def _round(x: float) -> float:
  return float(f"{x:.6g}")


def widen(grid: list, edge: str) -> float:
  """The rate one step beyond the `edge` ('low' | 'high') of a log-spaced grid (>= 2 rates): the
  spacing of the step before the edge's, so that 1-3 grids go on alternating (1e-3, 3e-3, 1e-2 ->
  3e-2 -> 1e-1; 1e-4, 3e-4, 1e-3 -> 3e-5 -> 1e-5) and uniform grids keep their ratio."""
  g = sorted(grid)
  if len(g) < 2 or edge not in ("low", "high"):
    raise ValueError(f"widen: grid={g!r} (>= 2 rates), edge={edge!r} ('low' or 'high')")
  if edge == "high":
    return _round(g[-1] * (g[-2] / g[-3] if len(g) >= 3 else g[-1] / g[-2]))
  return _round(g[0] / (g[2] / g[1] if len(g) >= 3 else g[1] / g[0]))


def _edge(grid: list, lr: float):
  return "low" if lr == min(grid) else "high" if lr == max(grid) else None


def tune_model(model: str, lrs, train, max_widenings: int) -> dict:
  """The grid-widening loop of one model. train(model, grid) -> the outcomes of every (length,
  schedule, lr, seed) of the grid (runs already trained are read back, not retrained).
  -> {"grid", "widened": [rates added], "at_edge", "choice", "candidates", "outcomes"}."""
  grid, widened = sorted(float(lr) for lr in lrs), []
  while True:
    outcomes = train(model, list(grid))
    choice = pick(outcomes)
    edge = _edge(grid, choice["lr"])
    if edge is None or len(widened) >= max_widenings:
      break
    widened.append(widen(grid, edge))
    _log(f"== tuning {model}: the choice {choice['lr']:g} is at the {edge} edge; adding {widened[-1]:g}")
    grid = sorted(grid + [widened[-1]])
  return {"grid": grid, "widened": widened, "at_edge": edge is not None, "choice": choice,
          "candidates": summarise(outcomes), "outcomes": outcomes}


def _train_grid(c, model: str, grid: list, root: str, train_group) -> list:
  """Trains (or reads back) every schedule x length x lr x seed of `model`; one outcome each."""
  tc = c.tuning
  field = c.get("length_fields", {}).get(tc.task, "task.seq_len")
  out = []
  for name, schedule in sorted(_as_dict(tc.schedules).items()):
    # schedule_steps None (constant, rsqrt: no length) is left as the config has it: it is unused
    base = {"num_train_steps": tc.steps, **CRITERIA_FIELDS, **flatten(_as_dict(tc.get("run_overrides", {}))),
            **{f"optimizer.{k}": schedule[k] for k in SCHEDULE_FIELDS if schedule[k] is not None}}
    get_config = _fixed(sweep.load_config_file(c.task_configs[tc.task]), base, c)
    axes = _grid(model=[model], **{field: tc.lengths}, lr=grid, seed=tc.seeds)
    _log(f"== tuning {tc.task} {model} {name} lr={grid}")
    rows = sweep.run_sweep(get_config, axes, files.join(root, "tuning", tc.task, name),
                           train_group=train_group)
    for row in rows:
      point = {k: row[k] for k in axes}
      overrides = _overrides(c, base, get_config(sweep.config_arg(point)).model.name)
      out.append({"model": model, "length": row[field], "schedule": name, "lr": float(row["lr"]),
                  "seed": row["seed"], "solved_sequences": row.get("solved_sequences"),
                  "solved_step": row.get("solved_step"), "censored": bool(row.get("censored")),
                  "final_loss": row.get("final_loss"), "eval_loss": row.get("eval_loss"),
                  "final_wrong": row.get("final_wrong"), "workdir": row["workdir"],
                  "command": _command(c.task_configs[tc.task], point, row["workdir"], overrides)})
  return out


def _check(tc):
  lrs = list(tc.lrs)
  if len(lrs) < 2 or any(not (isinstance(v, (int, float)) and 0 < v < math.inf) for v in lrs):
    raise ValueError(f"comparison.tuning.lrs={lrs!r}: at least 2 finite learning rates > 0")
  for name, schedule in _as_dict(tc.schedules).items():
    missing = [k for k in SCHEDULE_FIELDS if k not in schedule]
    if missing:
      raise ValueError(f"comparison.tuning.schedules.{name}={schedule!r}: missing {missing}; "
                       f"each schedule gives {list(SCHEDULE_FIELDS)}")
  if not isinstance(tc.max_widenings, int) or tc.max_widenings < 0:
    raise ValueError(f"comparison.tuning.max_widenings={tc.max_widenings!r}: an integer >= 0")


def tuned_table(tuning: dict) -> dict:
  """{model: optimizer fields} of the chosen candidates: the value of configs/common.py TUNED."""
  return {model: {"learning_rate": m["choice"]["lr"], **tuning["schedules"][m["choice"]["schedule"]]}
          for model, m in tuning["models"].items()}


def run_tuning(c, root: str, train_group=None, train=None) -> dict:
  """The tuning part (see the module doc). `train(model, grid) -> outcomes` replaces the training
  (tests); the models are tuned concurrently inside `common.training_slots(n)` with n > 1."""
  tc = c.tuning
  _check(tc)
  train = train or functools.partial(_train_grid, c, root=root,
                                     train_group=train_group or _train_with_flow)
  models = list(tc.models)
  results = run_concurrently([functools.partial(tune_model, m, tc.lrs, train, tc.max_widenings)
                              for m in models])
  out = {"task": tc.task, "lengths": list(tc.lengths), "seeds": list(tc.seeds), "steps": tc.steps,
         "schedules": {k: dict(v) for k, v in _as_dict(tc.schedules).items()}, "outcomes": [],
         "models": {}}
  for model, result in zip(models, results):
    out["outcomes"] += result.pop("outcomes")
    out["models"][model] = result
  out["tuned"] = tuned_table(out)
  return out
