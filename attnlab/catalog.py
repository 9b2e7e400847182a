"""What the command line can list before anything runs: models, tasks, a config's fields.

  python -m experiments.main --list=models           registry models and the configs' model words
  python -m experiments.main --list=tasks            every task, what it is, its parameters
  python -m experiments.main --config=configs/adding.py:lstm --list=config
                                                     every field of that config and its value
"""
import inspect
import sys

from attnlab import models, tasks
from attnlab.train.run_dir import config_to_json, flatten

LISTS = ("models", "tasks", "config")


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
    lines.append("Model words of the configs (e.g. --config=configs/adding.py:WORD), each a model "
                 "with these fields:")
    for word, (model, fields) in variants.items():
      shown = ", ".join(f"{k}={v!r}" for k, v in dict(fields).items()) or "its own recipe"
      lines.append(f"  {word}: {model} with {shown}")
  return "\n".join(lines)


def tasks_text() -> str:
  """Each task: the first line of its module's docstring and its parameters with defaults."""
  lines = ["Tasks (attnlab.tasks; set a parameter with --config.task.NAME=VALUE):"]
  for name in tasks.TASKS:
    task = tasks.task_object(name)
    module = sys.modules[task.example.__module__]
    params = ", ".join(f"{k}={v!r}" for k, v in task.defaults.items())
    lines.append(f"  {name}: {_first_line(module)}\n      parameters: {params}")
  return "\n".join(lines)


def config_text(config) -> str:
  """Every field of `config` (flattened: model.hidden_size = 128) with its value."""
  flat = flatten(config_to_json(config))
  width = max(len(k) for k in flat)
  return "\n".join(f"{k.ljust(width)} = {v!r}" for k, v in sorted(flat.items()))
