"""The "where attention struggles" part (issue 13): state tracking, length generalisation and recall.

`c.struggles`:
  models   the models trained on every task (registry names)
  lengths  {task: training T} for parity and flip_flop; each run is evaluated at the end on test
           sequences at factor x T for every factor of `factors` (config.eval_lengths: the
           trainer's final_len{L}_* metrics, final_eval_sequences of them per length)
  steps    {task: training steps} (parity, flip_flop, mqar)
  seeds    seeds per point, trained as one program (`train_seeds`)
  mqar     {"pairs": numbers of key-value pairs, "seq_len": one T for all of them, "models":
           its own models and their order, optional (default: models)}: the accuracy
           over queries (final_score) against the number of pairs at a fixed model size, with each
           model's recurrent-state or KV-cache bytes (attnlab.analysis.state_size)
  final_eval_sequences, run_overrides (nested dicts applied to every run of the part)

Result: {"factors", "lengths", "points": [length point], "mqar": {"seq_len", "pairs", "points"}}:
  length point  {"task", "model", "length", "seed", "workdir", "command", "params", "state",
                 "by_factor": {"1": {"score", "loss", "errors", "scored"}, "2": ...}}
  mqar point    {"task": "mqar", "model", "num_pairs", "seed", "workdir", "command", "params",
                 "state", "score", "loss", "errors", "scored"}
errors of scored are the exact counts: the steps (parity), reads (flip_flop) or queries (mqar)
the run got wrong of those it was scored on.
"""
from attnlab import files, sweep
from attnlab.analysis.state_size import state_bytes
from attnlab.comparison.common import (_as_dict, _command, _fixed, _grid, _log, _overrides,
                                       _train_with_flow, param_count)
from attnlab.train.run_dir import flatten

LENGTH_TASKS = ("parity", "flip_flop")


def _metrics(row: dict, prefix: str) -> dict:
  """The final evaluation's score, loss and exact counts from a sweep row (prefix final_ or
  final_len{L}_); None where the run has not recorded them."""
  return {k: row.get(f"{prefix}{k}") for k in ("score", "loss", "errors", "scored")}


def _sweep(c, task: str, base: dict, axes: dict, root: str, train_group) -> list:
  """Trains the grid `axes` of task's config with `base` and the comparison's overrides; each row
  with its point, command, parameter count and the model's state bytes at the training length."""
  s = c.struggles
  base = {**base, "final_eval_sequences": s.final_eval_sequences,
          **flatten(_as_dict(s.get("run_overrides", {})))}
  get_config = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
  out = []
  for row in sweep.run_sweep(get_config, axes, files.join(root, "struggles", task), train_group=train_group):
    point = {k: row[k] for k in axes}
    config = get_config(sweep.config_arg(point))
    out.append({"task": task, "model": row["model"], "seed": row["seed"], "workdir": row["workdir"],
                "command": _command(c.task_configs[task], point, row["workdir"],
                                    _overrides(c, base, config.model.name)),
                "params": param_count(row["workdir"]),
                "state": state_bytes(config.model.to_dict(), config.task.seq_len), "row": row})
  return out


def run_state_tracking(c, root: str, train_group=None) -> dict:
  """Trains and evaluates every point of c.struggles (see the module doc); returns the result."""
  s, train_group = c.struggles, train_group or _train_with_flow
  factors = [int(f) for f in s.factors]
  out = {"factors": factors, "lengths": {t: int(s.lengths[t]) for t in LENGTH_TASKS if t in s.lengths},
         "points": [], "mqar": None}
  for task, length in out["lengths"].items():
    _log(f"== struggles {task} T={length} x {factors}")
    base = {"num_train_steps": s.steps[task], "eval_lengths": tuple(f * length for f in factors)}
    axes = _grid(model=s.models, **{"task.seq_len": [length]}, seed=s.seeds)
    for p in _sweep(c, task, base, axes, root, train_group):
      row = p.pop("row")
      p["length"] = length
      p["by_factor"] = {str(f): _metrics(row, f"final_len{f * length}_") for f in factors}
      out["points"].append(p)
  if s.get("mqar") and len(s.mqar.pairs):  # pairs=() leaves MQAR out
    m = s.mqar
    _log(f"== struggles mqar pairs={list(m.pairs)} T={m.seq_len}")
    base = {"num_train_steps": s.steps["mqar"], "eval_lengths": (), "task.seq_len": m.seq_len}
    axes = _grid(model=m.get("models") or s.models, **{"task.num_pairs": m.pairs}, seed=s.seeds)
    points = []
    for p in _sweep(c, "mqar", base, axes, root, train_group):
      row = p.pop("row")
      points.append(dict(p, num_pairs=int(row["task.num_pairs"]), **_metrics(row, "final_")))
    out["mqar"] = {"seq_len": int(m.seq_len), "pairs": [int(x) for x in m.pairs], "points": points}
  return out
