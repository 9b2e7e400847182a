"""The "where attention struggles" part (issues 13, 26): state tracking, length generalisation,
recall against state size, and selection, each to its paper's protocol.

Every run trains until it meets its task's criterion at the training distribution (accuracy >= 0.99;
config.stop_when_solved with the geometric schedule of learning_cost.CRITERIA_FIELDS) or up to the
cap steps[task]; a run that never meets it is right-censored ("> cap" sequences). `c.struggles`:
  models   registry names or variants trained on every task of `tasks`
  seeds    seeds per point (>= 3 for a recording), trained as one program (`train_seeds`)
  steps    {task: cap in training steps} (parity, flip_flop, mqar, selective_copy)
  tasks    {task: {"train": {task param: value}, "tests": {name: {task param: value}}}}: trained
           with the train params; then every run is restored and scored on test_sequences
           sequences per test with those params changed (`struggles_eval`). parity (Delétang et
           al. 2023): train seq_len=40, min_len=1, variant=final; tests len_41 .. len_500, each
           seq_len = min_len = its length. flip_flop (Liu et al. 2023): train FFL(0.8); tests
           sparse (p_ignore 0.98) and dense (p_ignore 0.1) at the training T.
  mqar     {"seq_len", "pairs", "widths", "models", "width_fields": {registry model: {field:
           multiple of the width}}}: Zoology's sweep, the accuracy over queries against each
           model's state (or KV-cache) bytes as its width grows (attnlab.analysis.state_size)
  selective_copy  {"models", "task": {task params}}: Mamba against its time-invariant ablation
           mamba_lti (Gu & Dao 2023 Table 1)
  test_sequences, eval_batch_size, run_overrides (nested dicts applied to every run of the part)

Result: {"tasks": {task: {"train", "tests": [names]}}, "points": [point], "mqar": {"seq_len",
  "pairs", "widths", "points"} | None, "selective_copy": {"task", "points"} | None}; a point:
  {"task", "model", "seed", "workdir", "command", "params", "state", "solved_step",
   "solved_sequences" (None: censored), "censored", "cap_sequences",
   "final": {"score", "loss", "errors", "scored"} (test_sequences at the training distribution),
   "tests": {name: {"score", "loss", "errors", "scored", "params"}}   (length tasks)
   "width", "num_pairs"                                               (mqar)}
"""
from attnlab import files, sweep
from attnlab.analysis.state_size import state_bytes
from attnlab.comparison.common import (_as_dict, _command, _fixed, _grid, _log, _overrides,
                                       _train_with_flow, param_count)
from attnlab.comparison.struggles_eval import evaluate_run
from attnlab.train import config as cfg_lib
from attnlab.train.run_dir import flatten

LENGTH_TASKS = ("parity", "flip_flop")
CRITERIA = {"stop_when_solved": True, "eval_schedule": "geometric"}  # learning_cost's, per run


def _metrics(row: dict) -> dict:
  return {k: row.get(f"final_{k}") for k in ("score", "loss", "errors", "scored")}


def _sweep(c, task: str, base: dict, axes: dict, root: str, train_group, last=None) -> list:
  """Trains the grid `axes` of task's config with `base`, the part's criteria and overrides, then
  `last` (fields no comparison override may change: the MQAR widths); one point per row."""
  s = c.struggles
  base = {**base, "num_train_steps": int(s.steps[task]), **CRITERIA,
          "final_eval_sequences": int(s.test_sequences),
          **flatten(_as_dict(s.get("run_overrides", {})))}
  fixed = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
  get_config = (lambda arg: cfg_lib.apply_overrides(fixed(arg), last)) if last else fixed
  out = []
  for row in sweep.run_sweep(get_config, axes, files.join(root, "struggles", task),
                             train_group=train_group):
    point = {k: row[k] for k in axes}
    config = get_config(sweep.config_arg(point))
    solved = row.get("solved_sequences")
    out.append({"task": task, "model": row["model"], "seed": row["seed"], "workdir": row["workdir"],
                "command": _command(c.task_configs[task], point, row["workdir"],
                                    {**_overrides(c, base, config.model.name), **(last or {})}),
                "params": param_count(row["workdir"]),
                "state": state_bytes(config.model.to_dict(), config.task.seq_len),
                "solved_step": row.get("solved_step"), "solved_sequences": solved,
                "censored": solved is None, "cap_sequences": int(s.steps[task]) * config.batch_size,
                "final": _metrics(row), "row": row})
  return out


def _task_axes(params: dict) -> dict:
  return {f"task.{k}": [v] for k, v in params.items()}


def run_length_task(c, task: str, root: str, train_group) -> list:
  """Trains every model on `task`'s train params and scores each run on every test set."""
  s, spec = c.struggles, c.struggles.tasks[task]
  train, tests = _as_dict(spec.train), _as_dict(spec.get("tests", {}))
  _log(f"== struggles {task} {train} -> tests {list(tests)}")
  axes = _grid(model=s.models, **_task_axes(train), seed=s.seeds)
  points, cache = [], {}
  for p in _sweep(c, task, {}, axes, root, train_group):
    p.pop("row")
    p["tests"] = {name: evaluate_run(p["workdir"], params, int(s.test_sequences),
                                     int(s.eval_batch_size), cache)
                  for name, params in tests.items()}
    points.append(p)
  return points


def width_fields(m, model: str, registry_name: str, width: int) -> dict:
  """{model.field: value} of one MQAR width (fields scaled by width_fields[registry name])."""
  table = _as_dict(m.width_fields)
  fields = table.get(model, table.get(registry_name))
  if fields is None:
    raise ValueError(f"struggles.mqar.width_fields has no entry for model {model!r}; it has: "
                     f"{', '.join(table)}")
  return {f"model.{k}": int(round(v * width)) for k, v in fields.items()}


def run_mqar(c, root: str, train_group) -> dict:
  """Every model at every width of c.struggles.mqar, every number of pairs, at one T."""
  s, m = c.struggles, c.struggles.mqar
  get_config = sweep.load_config_file(c.task_configs["mqar"])
  _log(f"== struggles mqar T={m.seq_len} pairs={list(m.pairs)} widths={list(m.widths)}")
  points = []
  for model in (m.get("models") or s.models):
    name = get_config(model).model.name
    for width in m.widths:
      last = width_fields(m, model, name, int(width))
      axes = _grid(model=[model], **{k: [v] for k, v in last.items()},
                   **{"task.num_pairs": m.pairs}, seed=s.seeds)
      for p in _sweep(c, "mqar", {"task.seq_len": int(m.seq_len)}, axes, root, train_group, last):
        row = p.pop("row")
        points.append(dict(p, width=int(width), num_pairs=int(row["task.num_pairs"])))
  return {"seq_len": int(m.seq_len), "pairs": [int(x) for x in m.pairs],
          "widths": [int(w) for w in m.widths], "points": points}


def run_selective_copy(c, root: str, train_group) -> dict:
  """Mamba against mamba_lti (or the models given) on selective copying."""
  s, sc = c.struggles, c.struggles.selective_copy
  params = _as_dict(sc.task)
  _log(f"== struggles selective_copy {params} models={list(sc.models)}")
  axes = _grid(model=sc.models, **_task_axes(params), seed=s.seeds)
  points = _sweep(c, "selective_copy", {}, axes, root, train_group)
  for p in points:
    p.pop("row")
  return {"task": params, "points": points}


def run_state_tracking(c, root: str, train_group=None) -> dict:
  """Trains and tests every point of c.struggles (see the module doc); returns the result."""
  s, train_group = c.struggles, train_group or _train_with_flow
  out = {"tasks": {}, "points": [], "mqar": None, "selective_copy": None}
  for task in (t for t in LENGTH_TASKS if t in s.get("tasks", {})):
    spec = s.tasks[task]
    out["tasks"][task] = {"train": _as_dict(spec.train), "tests": list(_as_dict(spec.get("tests", {})))}
    out["points"] += run_length_task(c, task, root, train_group)
  if s.get("mqar") and len(s.mqar.pairs) and len(s.mqar.widths):  # pairs=() leaves MQAR out
    out["mqar"] = run_mqar(c, root, train_group)
  if s.get("selective_copy") and len(s.selective_copy.models):
    out["selective_copy"] = run_selective_copy(c, root, train_group)
  return out
