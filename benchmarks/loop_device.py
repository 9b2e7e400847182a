"""Issue 27's accelerator targets for the training loop, in one process within a time budget.

  python -m benchmarks.loop_device --out=loop.json --budget=230   # device_check's `loop` step
  python -m benchmarks.loop_device --tiny --out=/tmp/loop.json     # the code paths on a CPU

Parts, in this order, each after an untimed run that compiles its programs into the persistent
cache (`attnlab.compile_cache`):
  seeds        the comparison's Transformer (configs/adding.py:transformer) at T=200, 3 seeds as one
               program (`train_seeds`), evaluation/checkpoints/logs only at the end: the loop's
               steps/s from a short and a long run (slope: what a longer run adds per step), and
               each run's wall time. Target: >= 300 steps/s.
  population   10 learning rates (0.1x .. 3x the recipe's) x 3 seeds of the same Transformer as one
               program against one member alone, same steps: wall seconds and their ratio.
               Target: <= 2x.
  hochreiter   adding_h97 (configs/adding_h97.py: Hochreiter & Schmidhuber's sequences and stopping
               rule) with the LSTM at T=1000, 10 seeds as one program, each stopping when solved,
               for what is left of the budget (then stopped as by SIGTERM: each run saves and
               stops): steps reached, solved steps, steps/s. Target: within one device_check call.
Each part's result lands in --out as soon as it is measured (a part that fails is recorded with
its error and the next one runs).
"""
import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import traceback

import jax

from attnlab import compile_cache
from attnlab.train import Preempted, trainer
from attnlab.train.metric_writer import read_jsonl
from . import loop

FULL = dict(word="transformer", length=200, batch=64, seeds=3, short=20, long=520, pop_steps=200,
            lr_factors=(0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0),
            h97_word="lstm", h97_length=1000, h97_seeds=10, h97_cap=20000)
# the same code paths at test size on a CPU (tests/test_benchmarks.py)
TINY = dict(word="transformer", length=8, batch=8, seeds=2, short=3, long=8, pop_steps=4,
            lr_factors=(0.5, 2.0), h97_word="lstm", h97_length=10, h97_seeds=2, h97_cap=30,
            overrides={"model.d_model": 8, "model.d_ff": 16, "model.num_heads": 2,
                       "model.num_layers": 1}, h97_overrides={"model.hidden_size": 8})


def _configs(size: dict, steps: int, seeds, lr_factors=(1.0,)) -> list:
  out = []
  for factor in lr_factors:
    for seed in seeds:
      c = loop.run_config(size["word"], size["length"], size["batch"], steps,
                          **size.get("overrides", {}))
      c.optimizer.learning_rate *= factor
      c.seed = seed
      out.append(c)
  return out


def _timed(configs: list, train) -> float:
  root = tempfile.mkdtemp(prefix="attnlab-loop-device-")
  try:
    start = time.perf_counter()
    train(configs, [os.path.join(root, str(i)) for i in range(len(configs))])
    return time.perf_counter() - start
  finally:
    shutil.rmtree(root, ignore_errors=True)


def seeds_part(size: dict) -> dict:
  """The loop's steps/s with size['seeds'] seeds in one program."""
  seeds = range(size["seeds"])
  _timed(_configs(size, size["short"], seeds), trainer.train_seeds)  # compiles
  short = _timed(_configs(size, size["short"], seeds), trainer.train_seeds)
  long = _timed(_configs(size, size["long"], seeds), trainer.train_seeds)
  rate = (size["long"] - size["short"]) / max(long - short, 1e-9)
  return dict(model=size["word"], T=size["length"], seeds=size["seeds"], short_steps=size["short"],
              long_steps=size["long"], short_s=short, long_s=long, loop_steps_per_s=rate,
              whole_run_steps_per_s=size["long"] / long, target_steps_per_s=300)


def population_part(size: dict) -> dict:
  """len(lr_factors) x seeds members in one program against one member, same steps."""
  seeds, n = range(size["seeds"]), size["pop_steps"]
  one = lambda steps: _configs(size, steps, [0])
  members = lambda steps: _configs(size, steps, seeds, size["lr_factors"])
  _timed(one(2), trainer.train_seeds)  # compile both programs
  _timed(members(2), trainer.train_seeds)
  one_s = _timed(one(n), trainer.train_seeds)
  members_s = _timed(members(n), trainer.train_seeds)
  return dict(model=size["word"], T=size["length"], steps=n, members=len(members(1)),
              learning_rate_factors=list(size["lr_factors"]), one_member_s=one_s,
              population_s=members_s, ratio=members_s / one_s, target_ratio=2.0)


def hochreiter_part(size: dict, seconds: float) -> dict:
  """adding_h97 with size['h97_word'] at T=h97_length, h97_seeds seeds stopping when solved, for
  `seconds` (then stopped as on SIGTERM: a checkpoint, Preempted)."""
  from configs import adding_h97
  configs = []
  for seed in range(size["h97_seeds"]):
    c = adding_h97.get_config(f"{size['h97_word']},seq_len={size['h97_length']},"
                              "stop_when_solved=True")
    for key, value in size.get("h97_overrides", {}).items():
      parent, _, leaf = key.rpartition(".")
      c[parent][leaf] = value
    c.num_train_steps, c.seed, c.final_eval_sequences = size["h97_cap"], seed, 0
    c.checkpoint.async_save = False
    configs.append(c)
  root = tempfile.mkdtemp(prefix="attnlab-loop-device-h97-")
  workdirs = [os.path.join(root, str(s)) for s in range(len(configs))]
  outcome = {"stopped": False}

  def train():  # in a thread: the trainer then stops at the flag stop() sets (no signal needed)
    try:
      trainer.train_seeds(configs, workdirs)
    except Preempted:
      outcome["stopped"] = True
    except Exception as e:  # noqa: BLE001 (recorded)
      outcome["error"] = f"{type(e).__name__}: {e}"

  start = time.perf_counter()
  with trainer.stop_threads_on_signal() as stop:
    worker = threading.Thread(target=train)
    worker.start()
    worker.join(max(seconds, 1.0))
    if worker.is_alive():
      stop()  # each run saves a checkpoint at its next dispatch and raises Preempted
      worker.join()
  wall = time.perf_counter() - start
  runs = []
  for w in workdirs:
    rows = read_jsonl(os.path.join(w, "metrics.jsonl"))
    steps = [r["step"] for r in rows]
    solved = [r["solved_step"] for r in rows if "solved_step" in r]
    runs.append(dict(step=max(steps) if steps else 0, solved_step=solved[0] if solved else None))
  shutil.rmtree(root, ignore_errors=True)
  reached = max(r["step"] for r in runs)
  return dict(model=size["h97_word"], T=size["h97_length"], seeds=size["h97_seeds"],
              cap=size["h97_cap"], budget_s=seconds, wall_s=wall,
              stopped_by_budget=outcome["stopped"], error=outcome.get("error"),
              steps_reached=reached, steps_per_s_with_compile=reached / wall,
              solved=sum(r["solved_step"] is not None for r in runs), runs=runs)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True, help="the JSON file to write")
  p.add_argument("--budget", type=float, default=230, help="seconds for all parts together")
  p.add_argument("--tiny", action="store_true", help="test sizes (the code paths on a CPU)")
  p.add_argument("--parts", default="seeds,population,hochreiter")
  args = p.parse_args(argv)
  end = time.time() + args.budget
  size = TINY if args.tiny else FULL
  if not jax.config.jax_compilation_cache_dir:
    compile_cache.enable()
  doc = dict(backend=jax.default_backend(), device=str(jax.devices()[0].device_kind),
             tiny=args.tiny, budget_s=args.budget)
  parts = {"seeds": lambda: seeds_part(size), "population": lambda: population_part(size),
           "hochreiter": lambda: hochreiter_part(size, end - time.time() - 15)}
  for name in args.parts.split(","):
    start = time.time()
    try:
      doc[name] = parts[name]()
    except Exception as e:  # recorded; the next part runs
      doc[name] = dict(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
    doc[name]["part_s"] = round(time.time() - start, 1)
    print(f"LOOP {name}: {json.dumps(doc[name], default=str)[:400]}", flush=True)
    with open(args.out, "w") as f:
      json.dump(doc, f, indent=1, default=str)
  return doc


if __name__ == "__main__":
  main()
