"""First-step compile time of every shipped config, the persistent compilation cache, and the input
pipeline's share of step time.

Configs: each configs/*.py at its default argument. A config with `variants` counts each variant; a
comparison config (`comparison`, e.g. configs/compare.py and configs/default.py) counts each (task,
model) point at its longest length and its seq2seq models, through the task configs it names.
For each, in a child process as the trainer builds it (`steps.make_train_step`, batch_size from the
config, jit with a donated state): the seconds of trace + lower + XLA compile of the train step. The
child runs twice with one fresh persistent cache directory (`attnlab.compile_cache`): the first run
compiles and fills it (cold), the second loads from it (cached).
In the cold run each config then trains `pipeline_steps` steps from its own loader
(`trainer.make_datasets`), once reading and placing each batch on demand and once as the trainer
does, through `attnlab.data.prefetch` (config.prefetch_batches batches read and placed on the device
ahead, in a thread); the data wait is the time until the next batch is on the device, the step time
the train step to completion; the first two steps are not counted.
"""
import glob
import importlib
import os
import tempfile
import time

import jax
import numpy as np

from attnlab import compile_cache, models, tasks
from attnlab.data import prefetch
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps, trainer
from . import subproc

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
NOT_CONFIGS = ("__init__", "common")


def _load(name: str):
  return importlib.import_module(f"configs.{name}")


def _comparison_points(c) -> list:
  points = []
  for task in c.tasks:
    field = c.length_fields.get(task, "seq_len")
    module = os.path.splitext(os.path.basename(c.task_configs[task]))[0]
    for model in c.models:
      points.append((f"{module}.py:{model},{field}={max(c.lengths[task])}", module,
                     f"{model},{field}={max(c.lengths[task])}"))
  module = os.path.splitext(os.path.basename(c.task_configs[c.seq2seq.task]))[0]
  points += [(f"{module}.py:{m}", module, m) for m in c.seq2seq.models]
  return points


def shipped_configs(only=None) -> list:
  """[(label, config)] of every trainable config the config files ship (see the module doc)."""
  out, seen = [], set()
  names = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(CONFIG_DIR, "*.py")))
  for name in names:
    if name in NOT_CONFIGS or (only and name not in only):
      continue
    config = _load(name).get_config()
    if "variants" in config:
      entries = [(f"{name}.py/{k}", v) for k, v in config.variants.items()]
    elif "comparison" in config:
      entries = [(label, _load(module).get_config(arg))
                 for label, module, arg in _comparison_points(config.comparison)]
    else:
      entries = [(f"{name}.py", config)]
    for label, cfg in entries:
      key = (cfg.model.name, cfg.task.name, str(sorted(cfg_lib.task_params(cfg).items())))
      if key not in seen:
        seen.add(key)
        out.append((label, cfg))
  return out


def _build(config):
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  dtype = jax.numpy.bfloat16 if config.dtype == "bfloat16" else jax.numpy.float32
  step = steps.make_train_step(model, tx, spec, schedule, seed=config.seed, dtype=dtype,
                               label_smoothing=config.label_smoothing)
  params = cfg_lib.task_params(config)
  example = tasks.generate(config.task.name, config.batch_size, **params)
  example = {k: v for k, v in example.items() if v.dtype != object}
  state = jax.jit(lambda rng: steps.create_state(model, tx, spec, rng, example))(
      jax.random.PRNGKey(config.seed))
  return step, state, example, params


def _pipeline(config, compiled, state, params, num_steps: int, ahead: int):
  """(state, data wait and step time over `num_steps` steps); with `ahead`, through data.prefetch."""
  # As the trainer reads: batches made and placed on the device `ahead` steps early (0: on demand).
  it = prefetch.Prefetcher(iter(trainer.make_datasets(config, params, "train")), ahead,
                           transform=jax.device_put)
  wait, busy = [], []
  for _ in range(num_steps):
    start = time.perf_counter()
    batch = next(it)
    jax.block_until_ready(batch)
    ready = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    wait.append(ready - start)
    busy.append(time.perf_counter() - ready)
  it.close()
  wait, busy = sum(wait[2:]), sum(busy[2:])
  return state, dict(data_wait_s=wait, step_s=busy, wait_fraction=wait / max(wait + busy, 1e-12),
                     steps=num_steps - 2)


def child(task: dict) -> dict:
  """In a child process: compile (and with pipeline_steps, train) each config."""
  compile_cache.enable(task["cache_dir"], min_compile_s=0.0)
  results = []
  for label, config in shipped_configs(task.get("only")):
    row = dict(config=label, model=config.model.name, task=config.task.name,
               batch_size=config.batch_size, seq_len=config.task.get("seq_len"))
    try:
      step, state, example, params = _build(config)
      start = time.perf_counter()
      compiled = jax.jit(step, donate_argnums=0).lower(state, example).compile()
      row["compile_s"] = time.perf_counter() - start
    except Exception as e:  # pylint: disable=broad-except
      row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
    if task.get("pipeline_steps") and "error" not in row:
      try:  # a config reading prepared data (listops) compiles without it, but cannot train
        state, row["pipeline"] = _pipeline(config, compiled, state, params, task["pipeline_steps"], 0)
        state, row["prefetched"] = _pipeline(config, compiled, state, params, task["pipeline_steps"],
                                             config.prefetch_batches)
      except FileNotFoundError as e:
        row["pipeline_error"] = f"no data: {str(e)[:120]}"
    results.append(row)
  return dict(rows=results)


def run(pipeline_steps: int, only=None, log=print) -> dict:
  with tempfile.TemporaryDirectory(prefix="attnlab_cc_") as cache_dir:
    task = dict(kind="compile", cache_dir=cache_dir, only=only)
    cold = subproc.run_child(dict(task, pipeline_steps=pipeline_steps))
    cached = subproc.run_child(task)
  rows = cold.get("rows", [])
  warm = {r["config"]: r for r in cached.get("rows", [])}
  for row in rows:
    row["cached_compile_s"] = warm.get(row["config"], {}).get("compile_s")
    if "error" in row:
      log(f"  {row['config']:44s} {row['error']}")
      continue
    pipe = ""
    if "pipeline" in row:
      plain, ahead = row["pipeline"], row["prefetched"]
      pipe = (f"  data wait {100 * plain['wait_fraction']:4.1f}%, prefetched "
              f"{100 * ahead['wait_fraction']:4.1f}% of {ahead['step_s'] / ahead['steps'] * 1e3:6.1f} ms steps")
    log(f"  {row['config']:44s} compile {row['compile_s']:5.2f} s, cached "
        f"{row['cached_compile_s'] or float('nan'):5.2f} s{pipe}")
  return dict(rows=rows, status=(cold["status"], cached["status"]), cache=compile_cache.cache_dir())
