"""Seed sweeps: K seeds trained with vmap in one program against K runs one after another.

The config is configs/common's small LSTM on the adding problem (hidden `hidden`, T = `length`,
batch 64, Adam). The vmapped program (`attnlab.train.vmap_seeds`) does one step of all K seeds per
call; the sequential baseline runs the ordinary jitted train step of each seed in turn (compiled
once, as a loop over seeds in one process would). Both see the same batches. Reported: the time of
`steps` steps of all K seeds each way (median of `repeats` interleaved rounds), their ratio, and
each program's compile time (the sequential runs would pay theirs K times as separate processes).

`end_to_end` times what a sweep user waits for: K full runs through the trainer
(`train_and_evaluate` one after another, each with its own compile, evaluations and checkpoints)
against `train_seeds` (one vmapped program), each in a fresh temporary workdir.
"""
import tempfile
import time

import jax
import numpy as np

from attnlab import models, tasks
from attnlab.train import config as cfg_lib
from attnlab.train import optim, steps, trainer, vmap_seeds
from . import timing


def _config(hidden: int, length: int):
  """The swept run: the adding-problem LSTM with `hidden` units at T = `length`."""
  config = cfg_lib.base_config("lstm", "adding", seq_len=length)
  config.model.hidden_size = hidden
  return config


def run(num_seeds: int, hidden: int, length: int, num_steps: int, repeats: int, log=print) -> dict:
  config = _config(hidden, length)
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  batches = [tasks.generate("adding", config.batch_size, start=i * config.batch_size, seq_len=length)
             for i in range(num_steps)]
  seeds = list(range(num_seeds))

  states = vmap_seeds.init_states(model, tx, spec, seeds, batches[0])
  start = time.perf_counter()
  vstep = jax.jit(vmap_seeds.make_vmapped_train_step(model, tx, spec, schedule, seeds)).lower(
      states, batches[0]).compile()
  vmap_compile_s = time.perf_counter() - start
  singles = [steps.create_state(model, tx, spec, jax.random.PRNGKey(s), batches[0]) for s in seeds]
  step_fns = [jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=s)) for s in seeds]
  start = time.perf_counter()
  step_fns[0].lower(singles[0], batches[0]).compile()
  single_compile_s = time.perf_counter() - start
  held = {"vmapped": states, "sequential": singles}

  def vmapped():
    s = held["vmapped"]
    for batch in batches:
      s, metrics = vstep(s, batch)
    jax.block_until_ready(metrics)
    held["vmapped"] = s

  def sequential():
    out = []
    for fn, s in zip(step_fns, held["sequential"]):
      for batch in batches:
        s, metrics = fn(s, batch)
      jax.block_until_ready(metrics)
      out.append(s)
    held["sequential"] = out

  times = timing.interleaved({"vmapped": vmapped, "sequential": sequential}, repeats)
  t_v, t_s = timing.median(times["vmapped"]), timing.median(times["sequential"])
  log(f"  {num_seeds} seeds x {num_steps} steps: vmapped {t_v:.3f} s, sequential {t_s:.3f} s "
      f"-> {t_s / t_v:.2f}x  (compile: vmapped {vmap_compile_s:.1f} s, one seed {single_compile_s:.1f} s)")
  return dict(num_seeds=num_seeds, hidden=hidden, length=length, steps=num_steps,
              batch=config.batch_size, vmapped_s=t_v, sequential_s=t_s, ratio=t_s / t_v,
              vmapped_compile_s=vmap_compile_s, single_compile_s=single_compile_s,
              times_s={k: list(map(float, v)) for k, v in times.items()})


def end_to_end(num_seeds: int, hidden: int, length: int, num_steps: int, log=print) -> dict:
  """Seconds for K runs of `num_steps` steps through the trainer: one by one, and vmapped."""
  configs = []
  for seed in range(num_seeds):
    config = _config(hidden, length)
    config.seed, config.num_train_steps = seed, num_steps
    config.eval_every = config.checkpoint_every = max(1, num_steps // 2)
    configs.append(config)
  seconds = {}
  with tempfile.TemporaryDirectory(prefix="attnlab_sweep_") as root:
    for mode in ("sequential", "vmapped"):
      dirs = [f"{root}/{mode}/seed{c.seed}" for c in configs]
      start = time.perf_counter()
      if mode == "vmapped":
        trainer.train_seeds(configs, dirs)
      else:
        for c, d in zip(configs, dirs):
          trainer.train_and_evaluate(c, d)
      seconds[mode] = time.perf_counter() - start
  ratio = seconds["sequential"] / seconds["vmapped"]
  log(f"  end to end, {num_seeds} runs x {num_steps} steps through the trainer: sequential "
      f"{seconds['sequential']:.1f} s, vmapped {seconds['vmapped']:.1f} s -> {ratio:.2f}x")
  return dict(num_seeds=num_seeds, hidden=hidden, length=length, steps=num_steps,
              sequential_s=seconds["sequential"], vmapped_s=seconds["vmapped"], ratio=ratio)
