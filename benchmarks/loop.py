"""Training loop vs compiled step (issue 27): what the loop costs on top of the step it runs.

  python -m benchmarks.run --sections=loop --json=benchmarks/results/loop_cpu.json

For each comparison model at its comparison size on adding (configs/adding.py:<model>,seq_len=T,
batch 64), in one process:
  bare_ms   the train step as the trainer compiles it (`attnlab.train.parallel.Parallel`, the same
            state) on one placed batch: rounds of `bare_steps` steps dispatched back to back and
            waited for at the end; the median round / bare_steps.
  loop_ms   `attnlab.train.train_and_evaluate` over `steps` steps in a fresh workdir, evaluation,
            checkpoints and logging only at the last step (eval_every = checkpoint_every =
            log_every = steps, final_eval_sequences=0, one eval batch, stop_when_solved off): the
            whole call / steps, median of `repeats` runs; everything a run pays once (tracing,
            loading the compiled programs from the persistent cache, the workdir, the final
            evaluation and checkpoint) is spread over its steps.
  ratio     loop_ms / bare_ms: 1.0 is a loop that adds nothing to its compiled step.
  step_ms, fixed_s
            `repeats` short runs of `short_steps` split the run into a per-step part (the slope
            (median long - median short) / (steps - short_steps)) and a per-run part.
  program_ms
            the program the loop dispatches (`Parallel.fused_train_steps`: max_steps_per_dispatch
            steps per call, batches drawn inside; the training stream on the device) on the same
            state, timed as bare_ms is: what the loop's steps cost without the host's part.
            program_ratio = program_ms / bare_ms.
Bare rounds, program rounds, long and short runs alternate, with a pause before each (thread pools
spin after a call). On a loaded machine the slope is noisy: one run's per-run part varies by tenths
of a second, that is by several ms per step over 190 steps; program_ms is the direct measure.
A short run of each config first compiles everything into the persistent compilation cache
(`attnlab.compile_cache`); every timed run records the XLA compilations it still did
(`fresh_compiles`, counted through jax.monitoring), so a timing that paid for compiling shows it.

Population (`population`): 5 learning rates x 3 seeds of the LSTM at T=20 (300 steps), as 15
single runs one after another ('singles'), as one call of `attnlab.train.trainer.train_seeds` over
all 15 ('population': what the issue's population program will do), and as one train_seeds call
per learning rate ('seed_groups': runs that differ only in seed, one program each). Each variant
reports its wall time and how many programs it trained (`programs`: training programs built, with
the members of each), so the number stays honest whatever train_seeds groups.
"""
import os
import shutil
import tempfile
import time
from unittest import mock

import jax
import numpy as np

from attnlab import compile_cache, models, tasks
from attnlab.data import on_device as on_device_data
from attnlab.train import config as cfg_lib
from attnlab.train import optim, trainer
from attnlab.train.metric_writer import read_jsonl
from attnlab.train.parallel import Parallel
from . import research, timing

MODELS = ("rnn", "lstm", "gru", "lru", "transformer")  # lstm_chrono: the LSTM's step (init only)
PAUSE_S = 0.2  # untimed, before every timed call: XLA's threads spin for a while after a call
_COUNTS = {"compiles": 0, "cache_hits": 0, "listening": False}


def _listen():
  """Counts backend compile requests and persistent-cache hits (once per process)."""
  if _COUNTS["listening"]:
    return
  _COUNTS["listening"] = True

  def on_duration(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      _COUNTS["compiles"] += 1

  def on_event(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
      _COUNTS["cache_hits"] += 1

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)


def _fresh() -> int:
  """XLA compilations so far that were not loaded from the persistent cache."""
  return _COUNTS["compiles"] - _COUNTS["cache_hits"]


def ensure_cache():
  """The persistent compilation cache's directory, turned on here unless something already did."""
  current = jax.config.jax_compilation_cache_dir
  return current or compile_cache.enable(min_compile_s=0.0)


def run_config(word: str, length: int, batch: int, steps: int, **overrides):
  """configs/adding.py:<word>,seq_len=<length> at `batch`, trained `steps` steps with evaluation,
  checkpoints and logging only at the last, one evaluation batch and no stopping when solved."""
  config = research._config(word, length, batch, **overrides)
  config.num_train_steps = steps
  config.eval_every = config.checkpoint_every = config.log_every = steps
  config.num_eval_batches = 1
  config.final_eval_sequences = 0
  config.eval_schedule = "fixed"
  config.stop_when_solved = False
  return config


def _parallel(config):
  """(Parallel as the trainer builds it, its initial state, one host batch)."""
  spec, model_config = cfg_lib.validate(config, 1)
  model = models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  par = Parallel(config, model, tx, spec, schedule, [config.seed])
  host = tasks.generate(config.task.name, config.batch_size, **cfg_lib.task_params(config))
  host = {k: v for k, v in host.items() if v.dtype != object}
  state, _ = par.init_state({k: v[:1] for k, v in host.items()})
  return par, state, host


def bare_step(config):
  """A callable running n train steps exactly as the trainer compiles them, on one placed batch."""
  par, state, host = _parallel(config)
  holder = {"state": state, "batch": par.batch(host)}

  def run(n: int):
    for _ in range(n):
      holder["state"], metrics = par.train_step(holder["state"], holder["batch"])
    jax.block_until_ready(metrics["loss"])

  return run


def loop_program(config):
  """A callable running n train steps as the loop dispatches them (the training stream on the
  device): calls of the trainer's fused program of max_steps_per_dispatch steps, batches drawn
  inside; None where the config's stream is the host pipeline's."""
  if not cfg_lib.data_on_device(config):
    return None
  par, state, _ = _parallel(config)
  stream = (config.task.name, cfg_lib.task_params(config), config.batch_size, config.data_seed)
  k = config.get("max_steps_per_dispatch", 50)
  fused = par.fused_train_steps(on_device_data.make_batch_fn(*stream), k)
  holder = {"state": state, "step": 0}

  def run(n: int):
    while n > 0:
      m = min(n, k)
      holder["state"], rows = fused(holder["state"], np.int32(holder["step"] + 1), np.int32(m))
      holder["step"], n = holder["step"] + m, n - m
    jax.block_until_ready(rows["loss"])

  return run


def _timed(fn, n: int) -> float:
  """Seconds per step of fn(n), after a pause."""
  time.sleep(PAUSE_S)
  start = time.perf_counter()
  fn(n)
  return (time.perf_counter() - start) / n


def timed_runs(configs: list, train, root: str) -> dict:
  """Runs train(configs, workdirs) in fresh workdirs under `root`: wall seconds, compilations that
  were not cache hits, and the programs built (members of each)."""
  workdirs = [tempfile.mkdtemp(dir=root) for _ in configs]
  programs = []
  init = Parallel.__init__

  def counting(self, *args, **kwargs):
    init(self, *args, **kwargs)
    programs.append(len(getattr(self, "members", None) or self.seeds))

  time.sleep(PAUSE_S)
  fresh = _fresh()
  with mock.patch.object(Parallel, "__init__", counting):
    start = time.perf_counter()
    train(configs, workdirs)
    seconds = time.perf_counter() - start
  rows = read_jsonl(os.path.join(workdirs[0], "metrics.jsonl"))
  rates = [r["steps_per_sec"] for r in rows if "steps_per_sec" in r]
  for w in workdirs:
    shutil.rmtree(w, ignore_errors=True)
  return dict(seconds=seconds, fresh_compiles=_fresh() - fresh, programs=programs,
              steps_per_sec=rates[-1] if rates else None)


def _single(configs, workdirs):
  return [trainer.train_and_evaluate(c, w) for c, w in zip(configs, workdirs)]


def loop_row(word: str, length: int, batch: int, steps: int, short_steps: int, bare_steps: int,
             repeats: int, root: str) -> dict:
  """bare_ms, loop_ms, ratio, step_ms, fixed_s of one model at one T (see the module docstring)."""
  config, short = (run_config(word, length, batch, n) for n in (steps, short_steps))
  warm = timed_runs([short], _single, root)  # compiles every program into the persistent cache
  bare, program = bare_step(config), loop_program(config)
  for fn in (bare, program):
    if fn is not None:
      fn(1)  # traced, and compiled or loaded from the cache
  rounds, program_rounds, runs, short_runs = [], [], [], []
  for r in range(repeats + 1):
    rounds.append(_timed(bare, bare_steps))
    if program is not None:
      program_rounds.append(_timed(program, bare_steps))
    if r < repeats:
      runs.append(timed_runs([config], _single, root))
      short_runs.append(timed_runs([short], _single, root))
  bare_s = timing.median(rounds)
  program_s = timing.median(program_rounds) if program_rounds else None
  loop_s = timing.median([x["seconds"] for x in runs])
  short_s = timing.median([x["seconds"] for x in short_runs])
  step_s = (loop_s - short_s) / (steps - short_steps)
  return dict(model=word, T=length, batch=batch, steps=steps, short_steps=short_steps,
              bare_steps=bare_steps, bare_ms=1e3 * bare_s, loop_ms=1e3 * loop_s / steps,
              ratio=loop_s / steps / bare_s, step_ms=1e3 * step_s,
              step_ratio=step_s / bare_s, fixed_s=short_s - short_steps * step_s,
              program_ms=program_s and 1e3 * program_s,
              program_ratio=program_s and program_s / bare_s,
              bare_rounds_ms=[1e3 * x for x in rounds],
              program_rounds_ms=[1e3 * x for x in program_rounds],
              loop_runs_ms=[1e3 * x["seconds"] / steps for x in runs],
              short_run_s=short_s, short_runs_s=[x["seconds"] for x in short_runs],
              warmup_s=warm["seconds"], warmup_fresh_compiles=warm["fresh_compiles"],
              fresh_compiles=[x["fresh_compiles"] for x in runs + short_runs],
              logged_steps_per_sec=[x["steps_per_sec"] for x in runs])


def population(word: str = "lstm", length: int = 20, batch: int = 64, steps: int = 300,
               lr_factors=(0.25, 0.5, 1.0, 2.0, 4.0), seeds=(0, 1, 2), warmup_steps: int = 2,
               variants=("singles", "population", "seed_groups"), root: str = None,
               log=print) -> dict:
  """Wall time of len(lr_factors) x len(seeds) runs as singles, one train_seeds call, and one
  train_seeds call per learning rate (those of `variants`); the programs each trained."""
  base_lr = run_config(word, length, batch, steps).optimizer.learning_rate

  def configs(n):
    out = []
    for factor in lr_factors:
      for seed in seeds:
        c = run_config(word, length, batch, n)
        c.optimizer.learning_rate, c.seed = factor * base_lr, seed
        out.append(c)
    return out

  def by_lr(cs, ws):
    k = len(seeds)
    return [r for i in range(0, len(cs), k) for r in trainer.train_seeds(cs[i:i + k], ws[i:i + k])]

  every = {"singles": _single, "population": trainer.train_seeds, "seed_groups": by_lr}
  variants = {name: every[name] for name in variants}
  warm = {name: timed_runs(configs(warmup_steps), fn, root) for name, fn in variants.items()}
  out = dict(model=word, T=length, batch=batch, steps=steps, members=len(lr_factors) * len(seeds),
             learning_rates=[f * base_lr for f in lr_factors], seeds=list(seeds),
             warmup_fresh_compiles={n: w["fresh_compiles"] for n, w in warm.items()})
  for name, fn in variants.items():
    got = timed_runs(configs(steps), fn, root)
    out[name] = dict(seconds=got["seconds"], programs=len(got["programs"]),
                     members_per_program=got["programs"], fresh_compiles=got["fresh_compiles"])
    log(f"  population {name:12s} {got['seconds']:7.1f} s  {len(got['programs'])} programs "
        f"{got['programs']}")
  for name in ("population", "seed_groups"):
    if name in out and "singles" in out:
      out[f"{name}_over_singles"] = out[name]["seconds"] / out["singles"]["seconds"]
  return out


def run(lengths=(20, 100), words=MODELS, batch: int = 64, steps=None, short_steps: int = 10,
        bare_steps: int = 20, repeats: int = 2, population_sizes=None, with_population=True,
        log=print) -> dict:
  """{'rows': one per (model, T), 'population': ... (None without with_population)}; steps:
  {T: loop steps} (default 200)."""
  _listen()
  cache = ensure_cache()
  if cache is None:
    log("  the persistent compilation cache is off: every timed run compiles (fresh_compiles)")
  steps = steps or {}
  root = tempfile.mkdtemp(prefix="attnlab-loop-bench-")
  rows = []
  try:
    for length in lengths:
      for word in words:
        n = steps.get(length, 200)
        row = loop_row(word, length, batch, n, min(short_steps, n - 1), bare_steps, repeats, root)
        rows.append(row)
        log(f"  {word:12s} T={length:4d}  bare {row['bare_ms']:7.1f} ms  "
            f"loop {row['loop_ms']:7.1f} ms  ratio {row['ratio']:.2f}  "
            f"(per step {row['step_ms']:.1f} ms, per run {row['fixed_s']:.1f} s; program "
            f"{row['program_ms'] or float('nan'):.1f} ms; "
            f"fresh compiles {row['fresh_compiles']})")
    pop = population(**(population_sizes or {}), root=root, log=log) if with_population else None
  finally:
    shutil.rmtree(root, ignore_errors=True)
  return dict(rows=rows, population=pop, batch=batch, cache=cache,
              load_average_after=[round(x, 2) for x in os.getloadavg()])


def markdown(section: dict) -> str:
  """The loop section's tables as Markdown (what BENCHMARKS.md quotes)."""
  lines = ["| model | T | bare_ms | loop_ms | ratio | per step (slope) | per run | loop's program |",
           "|---|---|---|---|---|---|---|---|"]
  for r in section["rows"]:
    lines.append(f"| {r['model']} | {r['T']} | {r['bare_ms']:.1f} | {r['loop_ms']:.1f} | "
                 f"{r['ratio']:.2f} | {r['step_ms']:.1f} ms ({r['step_ratio']:.2f}x) | "
                 f"{r['fixed_s']:.1f} s | " + (f"{r['program_ms']:.1f} ms ({r['program_ratio']:.2f}x) |"
                                              if r.get("program_ms") else "- |"))
  pop = section.get("population")
  if pop:
    lines += ["", f"| {pop['members']} runs of {pop['model']}, T={pop['T']}, {pop['steps']} steps "
              "| wall time | programs (members each) | / singles |", "|---|---|---|---|"]
    for name in [n for n in ("singles", "population", "seed_groups") if n in pop]:
      v = pop[name]
      over = v["seconds"] / pop["singles"]["seconds"]
      lines.append(f"| {name} | {v['seconds']:.1f} s | {v['programs']} "
                   f"({', '.join(map(str, sorted(set(v['members_per_program']))))}) | {over:.2f} |")
  return "\n".join(lines) + "\n"
