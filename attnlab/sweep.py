"""Config sweeps: a grid of config-file arguments, one run (and workdir) per point.

A grid is written `model=[lstm,transformer] task.seq_len=[100,500] seed=[0,1]`: each axis is a
dotted config field (or the shortcuts of `attnlab.train.config.SHORTCUTS`; `model` picks the
config file's model variant), each value list in brackets. Point i becomes the config argument
`lstm,task.seq_len=100,seed=0` of the sweep's config file and trains into
`<sweep_root>/<point name>`, so it resumes like any run; finished points are skipped.
`results.csv` gets one row per point (its fields, status and final eval metrics, and, read from
metrics.jsonl: solved_step, solved_sequences, censored and the final_* metrics of
`config.final_eval_sequences`). A run solved with `config.stop_when_solved` counts as finished.
Every point's config is validated (fields, values, and whether its workdir may continue) before
any point trains; a dry run does only that and lists the statuses, writing nothing.

Populations: points whose configs differ only in `attnlab.train.config.POPULATION_FIELDS` (seed,
learning rate, warmup and schedule length, clip norm, weight decay) train as one program
(`attnlab.train.train_seeds`), each still in its own workdir; the sweep prints how it grouped
them ("sweep: 6 points in 2 populations", then one line per population).
"""
import ast
import csv
import functools
import io
import itertools
import re
import sys

import jax

from attnlab import files
from attnlab.train import config as cfg_lib, run_dir, sharding
from attnlab.train.checkpoints import latest_step_in
from attnlab.train.config import SHORTCUTS
from attnlab.train.metric_writer import read_jsonl

_AXIS = re.compile(r"([\w.]+)=\[([^\]]*)\]")


def load_config_file(path: str):
  """The get_config function of a config file given by path ('configs/adding.py')."""
  import importlib.util
  if not files.exists(path):
    raise FileNotFoundError(f"--config={path}: config file {path!r} not found")
  spec = importlib.util.spec_from_file_location(f"attnlab_config_{abs(hash(path))}", path)
  if spec is None:
    raise FileNotFoundError(f"--config={path}: {path!r} is not a Python config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config


def parse_grid(text: str) -> dict:
  """'a=[1,2] b=[x]' -> {'a': [1, 2], 'b': ['x']}; also one axis per line (a sweep file)."""
  text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
  axes, fields = {}, {}
  for key, values in _AXIS.findall(text):
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not items:
      raise ValueError(f"sweep axis {key!r} has no values")
    field = SHORTCUTS.get(key, key)
    if field in fields:
      raise ValueError(f"sweep axis {key!r} repeats {fields[field]!r}: give each axis once, with all "
                       f"its values, e.g. {key}=[v1,v2]")
    fields[field] = key
    axes[key] = [_literal(v) for v in items]
  leftover = _AXIS.sub("", text).strip()
  if leftover or not axes:
    raise ValueError(f"cannot parse sweep {text!r}: write axes as key=[v1,v2] separated by spaces")
  return axes


def _literal(text):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    pass
  try:
    return float(text)  # nan, inf: numbers that have no Python literal
  except ValueError:
    return text


def points(axes: dict) -> list:
  """Every combination, as dicts in grid order (the last axis varies fastest)."""
  keys = list(axes)
  return [dict(zip(keys, combo)) for combo in itertools.product(*axes.values())]


def config_arg(point: dict) -> str:
  """{'model': 'lstm', 'task.seq_len': 100} -> 'lstm,task.seq_len=100' (a config-file argument)."""
  parts = [str(point["model"])] if "model" in point else []
  parts += [f"{k}={v}" for k, v in point.items() if k != "model"]
  return ",".join(parts)


def point_name(point: dict) -> str:
  """A directory name for the point, e.g. 'model=lstm,task.seq_len=100'."""
  name = ",".join(f"{k}={v}" for k, v in point.items())
  return re.sub(r"[^\w.,=+-]", "_", name)


def run_status(workdir: str, num_train_steps: int, stop_when_solved: bool = False):
  """('finished' | 'partial' | 'new', metrics) of a point's workdir.

  metrics: the last eval metrics, solved_step and solved_sequences (None when unsolved), censored
  (finished without being solved; None while unfinished) and the final_* metrics. A run that was
  solved (and checkpointed there) counts as finished when `stop_when_solved`.
  """
  step = latest_step_in(workdir)
  rows = [r for r in read_jsonl(files.join(workdir, "metrics.jsonl"))
          if step is not None and r["step"] <= step]  # not rows past the checkpoint it resumes from
  evals = [r for r in rows if "eval_loss" in r]
  out = {k: v for k, v in evals[-1].items() if k != "step"} if evals else {}
  solved = [r for r in rows if "solved_step" in r]
  out["solved_step"] = int(solved[0]["solved_step"]) if solved else None
  out["solved_sequences"] = int(solved[0]["solved_sequences"]) if solved else None
  finals = [r for r in rows if any(k.endswith("_sequences") and k.startswith("final_") for k in r)]
  counts = ("_wrong", "_sequences", "_errors", "_scored")  # exact counts, kept as int
  if finals:
    out.update({k: (int(v) if k.endswith(counts) else v)
                for k, v in finals[-1].items() if k.startswith("final_")})
  finished = step is not None and (step >= num_train_steps or (bool(solved) and stop_when_solved))
  out["censored"] = (not solved) if finished else None
  if finished:
    return "finished", out
  return ("partial" if step is not None else "new"), out


def write_results(path: str, rows: list):
  keys = []
  for row in rows:
    keys += [k for k in row if k not in keys]
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=keys)
  writer.writeheader()
  writer.writerows(rows)
  files.write_text(path, out.getvalue())


RESULT_KEYS = ("solved_step", "solved_sequences", "censored")


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4f}"
  return "-" if value is None else str(value)


def summary_table(rows: list, metrics=("eval_loss", "eval_score")) -> str:
  """A markdown table: the point's fields, status and `metrics` (e.g. add "solved_step")."""
  fields = [k for k in rows[0] if k not in ("workdir", "status") + RESULT_KEYS
            and not k.startswith(("eval_", "final_"))]
  header = fields + ["status"] + list(metrics)
  lines = [" | ".join(header), " | ".join("---" for _ in header)]
  for r in rows:
    cells = [str(r.get(k, "")) for k in fields + ["status"]]
    cells += [_cell(r.get(m)) for m in metrics]
    lines.append(" | ".join(cells))
  return "\n".join(lines)


def run_sweep(get_config, axes: dict, root: str, train_fn=None, dry_run: bool = False,
              train_group=None, map_groups=None) -> list:
  """Trains every point of the grid that is not finished; returns the results rows.

  get_config: the config file's get_config(arg). Every point is checked first (`check_point`);
  dry_run: only that, and the rows with each point's status (nothing is written). Points that
  differ only in population fields (`populations`) are trained together by `train_group(configs,
  workdirs) -> [final metrics]` (default `attnlab.train.train_seeds`: one program); with
  `train_fn(config, workdir)` every point is trained on its own instead. map_groups(calls) ->
  [call() for call in calls] trains the groups (default: one after the other; the comparison passes
  `run_concurrently`).
  """
  if train_fn is not None:
    train_group = lambda configs, workdirs: [train_fn(c, w) for c, w in zip(configs, workdirs)]
  elif train_group is None:
    from attnlab.train import train_seeds as train_group
  configs = {point_name(p): check_point(get_config, p, root) for p in points(axes)}
  if dry_run:
    return [_row(p, configs[point_name(p)], root) for p in points(axes)]
  files.makedirs(root)
  rows, calls = {}, []
  pts = points(axes)
  groups = populations(pts, [configs[point_name(p)] for p in pts])
  if train_fn is None:  # with train_fn each point trains on its own
    print(grouping_summary(groups), file=sys.stderr, flush=True)
  for group in groups:
    todo = []
    for point in group:
      config = configs[point_name(point)]
      rows[point_name(point)] = row = _row(point, config, root)
      if row["status"] != "finished":
        todo.append((point, config, row["workdir"], row["status"]))
    if todo:
      calls.append(functools.partial(_train_todo, train_group, todo, rows))
  (map_groups or (lambda cs: [c() for c in cs]))(calls)
  rows = [rows[point_name(p)] for p in points(axes)]
  write_results(files.join(root, "results.csv"), rows)
  return rows


def _train_todo(train_group, todo: list, rows: dict):
  """Trains one group of unfinished points [(point, config, workdir, status)]; updates their rows."""
  for point, _, workdir, status in todo:
    print(f"== {point_name(point)} ({status}) -> {workdir}", file=sys.stderr, flush=True)
  results = train_group([t[1] for t in todo], [t[2] for t in todo])
  for (point, _, _, _), metrics in zip(todo, results):
    rows[point_name(point)].update(status="finished", **metrics)


def check_point(get_config, point: dict, root: str):
  """The point's config, validated as a run would be before compiling; ValueError naming the point."""
  try:
    config = get_config(config_arg(point))  # unknown fields fail here
    cfg_lib.validate(config, sharding.data_axis_size(config), jax.process_count())
    run_dir.check_config_matches(files.join(root, point_name(point)), config)
  except (ValueError, TypeError) as e:  # TypeError: a value of the wrong type for its field
    raise ValueError(f"sweep point {point_name(point)}: {e}") from None
  return config


def _row(point: dict, config, root: str) -> dict:
  workdir = files.join(root, point_name(point))
  status, metrics = run_status(workdir, config.num_train_steps, config.stop_when_solved)
  return {**point, "workdir": workdir, "status": status, **metrics}


def populations(pts: list, configs: list) -> list:
  """The points grouped by `config.population_key` of their configs (one list per population, in
  grid order): points that differ only in population fields share a group."""
  groups = {}
  for p, config in zip(pts, configs):
    groups.setdefault(cfg_lib.population_key(config), []).append(p)
  return list(groups.values())


def grouping_summary(groups: list) -> str:
  """'sweep: 4 points in 1 population', then per population its points' varying axes, e.g.
  '  population 1 (4 points): lr=[0.01, 0.003] seed=[0, 1]'."""
  n = sum(len(g) for g in groups)
  lines = [f"sweep: {n} point{'s' * (n != 1)} in {len(groups)} "
           f"population{'s' * (len(groups) != 1)}"]
  for i, group in enumerate(groups, 1):
    axes = {}
    for p in group:
      for k, v in p.items():
        axes.setdefault(k, [])
        if v not in axes[k]:
          axes[k].append(v)
    shared = " ".join(f"{k}={v[0]}" for k, v in axes.items() if len(v) == 1)
    varied = " ".join(f"{k}=[{', '.join(map(str, v))}]" for k, v in axes.items() if len(v) > 1)
    lines.append(f"  population {i} ({len(group)} point{'s' * (len(group) != 1)}): "
                 + " ".join(filter(None, (shared, varied))))
  return "\n".join(lines)
