"""The comparison Transformer's step with the model code of an earlier commit against today's, in
one process, by process CPU time and wall time (issue 30).

  python -m benchmarks.transformer_before_after                      # before: ea8f1dd, T=150,500
  python -m benchmarks.transformer_before_after --commit=HEAD~3 --lengths=20,150 --rounds=7

The earlier commit's `attnlab/` is unpacked (`git archive`) into a temporary folder as the package
`attnlab_<commit>` (its imports rewritten to it), and only its `models` build the model: config,
data, loss, optimizer and train step are today's (`attnlab.train.steps.make_train_step`), so the
difference is the model code alone. Each round runs every candidate's jitted step `n` times (n =
600 / T, at least 1) and reads the process's CPU time (user + system, all threads:
`resource.getrusage`) and the wall time around them; rounds alternate the candidates. On a shared
machine CPU time is the steadier measure (a descheduled thread uses none); wall time is what a run
waits. Medians and minima over rounds; the load average is stored with the results.
"""
import argparse
import importlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import jax

from attnlab.train import steps
from . import research

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IMPORT = re.compile(r"\b(from|import) attnlab(?=[ .\n]|$)")


def rewrite_imports(source: str, package: str) -> str:
  """`from attnlab.x import y` / `import attnlab.x` -> the same from `package`."""
  return _IMPORT.sub(lambda m: f"{m.group(1)} {package}", source)


def old_package(commit: str, folder: str) -> str:
  """Unpacks `commit`'s attnlab/ into folder/attnlab_<commit> and returns the package name."""
  sha = subprocess.check_output(["git", "rev-parse", "--short", commit], cwd=REPO,
                                text=True).strip()
  package = f"attnlab_{sha}"
  archive = os.path.join(folder, "old.tar")
  with open(archive, "wb") as f:
    subprocess.run(["git", "archive", commit, "attnlab"], cwd=REPO, stdout=f, check=True)
  with tarfile.open(archive) as tar:
    tar.extractall(folder, filter="data")
  os.rename(os.path.join(folder, "attnlab"), os.path.join(folder, package))
  for root, _, files in os.walk(os.path.join(folder, package)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        with open(path) as f:
          text = f.read()
        with open(path, "w") as f:
          f.write(rewrite_imports(text, package))
  sys.path.insert(0, folder)
  return package


def step_fn(models_module, length: int, batch: int):
  """A blocking call of the comparison Transformer's jitted train step built by `models_module`."""
  config, spec, _, tx, schedule, data = research.setup("transformer", length, batch)
  from attnlab.train import config as cfg_lib
  model = models_module.build(cfg_lib.validate(config, 1)[1])
  state = {"s": steps.create_state(model, tx, spec, jax.random.PRNGKey(0), data)}
  step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0), donate_argnums=0)

  def run():
    state["s"], metrics = step(state["s"], data)
    jax.block_until_ready(metrics["loss"])

  run()
  return run


def cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def measure(fns: dict, calls: int, rounds: int) -> dict:
  """{name: {'cpu_ms': [...], 'wall_ms': [...]}} per step, `calls` steps a round, rotating order."""
  out = {name: {"cpu_ms": [], "wall_ms": []} for name in fns}
  names = list(fns)
  for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:
      time.sleep(0.1)
      cpu, wall = cpu_seconds(), time.perf_counter()
      for _ in range(calls):
        fns[name]()
      out[name]["cpu_ms"].append(1e3 * (cpu_seconds() - cpu) / calls)
      out[name]["wall_ms"].append(1e3 * (time.perf_counter() - wall) / calls)
  return out


def run(commit: str = "ea8f1dd", lengths=(150, 500), batch: int = 64, rounds: int = 5,
        log=print) -> dict:
  from attnlab import models
  with tempfile.TemporaryDirectory() as folder:
    package = old_package(commit, folder)
    old_models = importlib.import_module(package + ".models")
    rows = []
    for length in lengths:
      fns = {"before": step_fn(old_models, length, batch), "after": step_fn(models, length, batch)}
      times = measure(fns, max(1, 600 // length), rounds)
      row = dict(T=length, load_average=[round(x, 2) for x in os.getloadavg()])
      for name, t in times.items():
        row[name] = {k: dict(median=round(statistics.median(v), 1), min=round(min(v), 1))
                     for k, v in t.items()}
      for k in ("cpu_ms", "wall_ms"):
        ratio = row["before"][k]["median"] / row["after"][k]["median"]
        row[f"before_over_after_{k}"] = round(ratio, 3)
      rows.append(row)
      log(f"  T={length}: CPU ms/step before {row['before']['cpu_ms']['median']:.0f}, after "
          f"{row['after']['cpu_ms']['median']:.0f} ({row['before_over_after_cpu_ms']:.2f}x); wall "
          f"{row['before']['wall_ms']['median']:.0f} -> {row['after']['wall_ms']['median']:.0f}; "
          f"load {row['load_average'][0]}")
  return dict(rows=rows, before_commit=commit, batch=batch, rounds=rounds)


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m benchmarks.transformer_before_after")
  p.add_argument("--commit", default="ea8f1dd", help="the model code to compare against")
  p.add_argument("--lengths", default="150,500")
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results",
                                               "transformer_before_after_cpu.json"))
  args = p.parse_args(argv)
  result = run(args.commit, tuple(int(t) for t in args.lengths.split(",")), rounds=args.rounds)
  result.update(command="python -m benchmarks.transformer_before_after " + " ".join(argv or []),
                after_commit=subprocess.check_output(["git", "rev-parse", "--short", "HEAD"],
                                                     cwd=REPO, text=True).strip(),
                jax=jax.__version__, cpus=os.cpu_count(), date=time.strftime("%Y-%m-%d %H:%M"))
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"results: {args.out}")
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
