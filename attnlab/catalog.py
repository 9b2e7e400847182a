"""What the command line can list before anything runs: models, tasks, a config's fields.

  attnlab models        registry models and the configs' model words   (= --list=models)
  attnlab tasks         every task, what it is, its parameters and when it counts as solved
  attnlab config        the shipped configs by name, each with its docstring's first line
  attnlab config adding:lstm [--config.FIELD=VALUE]
                        every field of that config: its value, the config file's default where an
                        override changed it, and the allowed values where they are a fixed list
"""
import ast
import inspect
import os
import sys

from attnlab import layout, models, tasks
from attnlab.train.run_dir import config_to_json, flatten

LISTS = ("models", "tasks", "config", "configs")


def _first_line(obj) -> str:
  doc = inspect.getdoc(obj) or ""
  return doc.splitlines()[0] if doc else ""


def models_text(variants: dict = None) -> str:
  """Each registry model with its fields' defaults; then the config words (variants) that build one
  of them with other fields: {word: (model, {field: value})}."""
  lines = ["Models (attnlab.models; set any field with --config.model.FIELD=VALUE):"]
  for name in models.MODELS:
    fields = {k: v for k, v in models.default_config(name).items() if k != "name"}
    lines.append(f"  {name}: " + ", ".join(f"{k}={v!r}" for k, v in fields.items()))
  if variants:
    lines.append("Model words of the configs (e.g. --config=adding:WORD), each a model "
                 "with these fields:")
    for word, (model, fields) in variants.items():
      shown = ", ".join(f"{k}={v!r}" for k, v in dict(fields).items()) or "its own recipe"
      lines.append(f"  {word}: {model} with {shown}")
  return "\n".join(lines)


def configs_text() -> str:
  """Each shipped config by name with the first line of its docstring."""
  lines = ["Configs (attnlab config NAME[:ARG] shows every field; train one with attnlab train "
           "--config=NAME[:ARG]; each file's docstring gives its arguments, commands and times):"]
  for name in layout.config_names():
    with open(os.path.join(layout.configs_dir(), name + ".py"), encoding="utf-8") as f:
      doc = ast.get_docstring(ast.parse(f.read())) or ""
    lines.append(f"  {name}: {doc.splitlines()[0] if doc else ''}")
  return "\n".join(lines)


def tasks_text() -> str:
  """Each task: the first line of its module's docstring, its parameters with defaults and its
  criterion (when a run counts as solved) at those defaults; then config.criterion's choices."""
  from attnlab.train import criteria  # pylint: disable=import-outside-toplevel
  lines = ["Tasks (attnlab.tasks; set a parameter with --config.task.NAME=VALUE):"]
  for name in tasks.TASKS:
    task = tasks.task_object(name)
    module = sys.modules[task.example.__module__]
    params = ", ".join(f"{k}={v!r}" for k, v in task.defaults.items())
    lines.append(f"  {name}: {_first_line(module)}\n      parameters: {params}")
    if task.criterion is not None:
      lines.append(f"      solved when: {tasks.criterion(name).description}")
  lines.append(f"Criteria (--config.criterion=NAME): {', '.join(criteria.CRITERIA)}; 'task' is the "
               "task's own (above), 'hochreiter1997' the 1997 paper's stopping rule (adding only)")
  return "\n".join(lines)


def choices(config) -> dict:
  """{dotted field: allowed values} for the fields whose values are a fixed list."""
  from attnlab.train import config as cfg, criteria, losses, optim  # pylint: disable=C0415
  out = {"model.name": models.MODELS, "task.name": tasks.TASKS, "criterion": criteria.CRITERIA,
         "optimizer.name": optim.OPTIMIZERS, "optimizer.schedule": optim.SCHEDULES,
         "parallelism": cfg.PARALLELISMS, "seed_parallelism": cfg.SEED_PARALLELISMS,
         "dtype": cfg.DTYPES, "eval_schedule": cfg.EVAL_SCHEDULES,
         "data.on_device": cfg.ON_DEVICE_CHOICES, "on_nonfinite": ("stop", "record"),
         "checkpoint.best_mode": ("max", "min"), "stop_when_solved": (False, True)}
  try:
    spec = cfg.task_spec(config)
    out["checkpoint.best_metric"] = tuple(f"eval_{m}" for m in losses.metric_names(spec))
  except (AttributeError, KeyError, ValueError):  # a comparison config: no task of its own
    pass
  return {k: tuple(v) for k, v in out.items()}


def _defaults(spec: str) -> list:
  """[(shown spec, flattened config)] of `spec` ('adding.py:lstm,seq_len=30') without any
  --config.FIELD override, then of its model word alone ('adding:lstm'); those that cannot be made
  are left out."""
  from attnlab import cli  # pylint: disable=import-outside-toplevel
  path, _, arg = spec.partition(":")
  word = arg.split(",", 1)[0] if arg and "=" not in arg.split(",", 1)[0] else ""
  out = []
  for each in dict.fromkeys((spec, path + (":" + word if word else ""))):
    try:
      out.append((layout.name_form(each),
                  flatten(config_to_json(cli.load_config(layout.resolve_config(each))))))
    except (ValueError, TypeError, OSError):
      pass
  return out


def config_text(config, spec: str = None) -> str:
  """Every field of `config` (flattened: model.hidden_size = 128) with its value; after '#', what
  `spec` (the --config value it was made from) gives without the --config.FIELD overrides, or its
  model word without the argument's key=value parts, where that differs, and the allowed values
  where they are a fixed list."""
  flat = flatten(config_to_json(config))
  defaults = _defaults(spec) if spec else []
  allowed = choices(config)
  width = max(len(k) for k in flat)
  lines = [f"# {layout.name_form(spec) if spec else 'config'}: every field (set one with "
           "--config.FIELD=VALUE)"]
  for key, value in sorted(flat.items()):
    notes = [f"{shown} gives {d[key]!r}" for shown, d in defaults
             if key in d and d[key] != value][:1]
    if key in allowed:
      notes.append("choices: " + ", ".join(map(repr, allowed[key])))
    line = f"{key.ljust(width)} = {value!r}"
    lines.append(line + ("  # " + "; ".join(notes) if notes else ""))
  return "\n".join(lines)
