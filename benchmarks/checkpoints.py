"""One orbax manager (LatestN + BestN: attnlab.train.checkpoints) against the two managers it
replaced (checkpoints/ + best/, the module at OLD_COMMIT), on a checkpoint-heavy tiny run, in one
process, alternating (load on the machine hits both alike):

  PYTHONPATH=. python -m benchmarks.checkpoints [repeats] [--json=PATH]

(the recording: 5 --json=benchmarks/results/checkpoints_cpu.json)

The run: configs/adding.py:lstm at seq_len 20, 40 steps, evaluated and checkpointed every 2 steps
(20 saves, eval_score of the adding task as best_metric), asynchronous saves. Each variant reports
the median wall time of `train_and_evaluate` (compilation comes from a persistent cache warmed
first, the same for both), the summed `checkpoint_blocked_s` (the time a save blocks training),
the bytes the process wrote (/proc/self/io wchar: every write() of every thread, TensorStore's
included) and the bytes left in the workdir's checkpoint folders.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

from attnlab import compile_cache
from attnlab.configs import adding
from attnlab.train import checkpoints, train_and_evaluate
from attnlab.train import trainer as trainer_module
from attnlab.train.metric_writer import read_jsonl

OLD_COMMIT = "c18ff0f"  # the last commit with two managers and the repair of best/
ARG = "lstm,seq_len=20,steps=40,eval_every=2,checkpoint_every=2,log_every=2,num_eval_batches=1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def old_module():
  """attnlab/train/checkpoints.py as it was at OLD_COMMIT, imported under another name."""
  source = subprocess.run(["git", "show", f"{OLD_COMMIT}:attnlab/train/checkpoints.py"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
  module = types.ModuleType("checkpoints_two_managers")
  code = compile(source, "checkpoints_two_managers.py", "exec")
  exec(code, module.__dict__)  # pylint: disable=exec-used
  return module


def _wchar() -> int:
  with open("/proc/self/io") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("wchar"))


def _folder_bytes(path) -> int:
  return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)


def one_run(module, workdir) -> dict:
  """Trains ARG in `workdir` with `module` as the trainer's checkpoint library."""
  saved = trainer_module.ckpt_lib
  trainer_module.ckpt_lib = module
  try:
    written, start = _wchar(), time.perf_counter()
    train_and_evaluate(adding.get_config(ARG), workdir)
    wall = time.perf_counter() - start
    written = _wchar() - written
  finally:
    trainer_module.ckpt_lib = saved
  rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  return dict(wall_s=wall, blocked_s=sum(r.get("checkpoint_blocked_s", 0) for r in rows),
              written_bytes=written, kept_bytes=sum(_folder_bytes(os.path.join(workdir, d))
                                                    for d in ("checkpoints", "best")),
              kept_steps={d: sorted(map(int, filter(str.isdigit, os.listdir(os.path.join(
                  workdir, d))))) for d in ("checkpoints", "best")
                          if os.path.isdir(os.path.join(workdir, d))})


def compare(repeats: int = 3) -> dict:
  variants = {"two_managers": old_module(), "one_manager": checkpoints}
  runs = {name: [] for name in variants}
  with tempfile.TemporaryDirectory() as tmp:
    compile_cache.enable(os.path.join(tmp, "cache"))
    one_run(checkpoints, os.path.join(tmp, "warm"))  # fills the compilation cache
    for i in range(repeats):
      for name, module in (variants.items() if i % 2 == 0 else reversed(variants.items())):
        runs[name].append(one_run(module, os.path.join(tmp, f"{name}_{i}")))
  out = {}
  for name, results in runs.items():
    out[name] = {k: statistics.median(r[k] for r in results)
                 for k in ("wall_s", "blocked_s", "written_bytes", "kept_bytes")}
    out[name].update(runs=results, kept_steps=results[-1]["kept_steps"])
  out["ratio_wall"] = out["one_manager"]["wall_s"] / out["two_managers"]["wall_s"]
  out["ratio_blocked"] = out["one_manager"]["blocked_s"] / out["two_managers"]["blocked_s"]
  out["ratio_written"] = out["one_manager"]["written_bytes"] / out["two_managers"]["written_bytes"]
  return out


def main(argv) -> dict:
  from benchmarks import run as bench_run  # machine() and versions() of every recording
  repeats = int(next((a for a in argv if a.isdigit()), 3))
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--json=")), None)
  import orbax.checkpoint
  result = dict(machine=bench_run.machine(),
                versions=dict(bench_run.versions(), orbax=orbax.checkpoint.__version__),
                command="python -m benchmarks.checkpoints " + " ".join(argv), config=ARG,
                old_commit=OLD_COMMIT, repeats=repeats,
                started=time.strftime("%Y-%m-%d %H:%M:%S"), **compare(repeats))
  if path:
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  summary = main(sys.argv[1:])
  for name in ("two_managers", "one_manager"):
    print(name, {k: summary[name][k] for k in ("wall_s", "blocked_s", "written_bytes",
                                               "kept_bytes", "kept_steps")})
  print({k: round(v, 3) for k, v in summary.items() if k.startswith("ratio")})
