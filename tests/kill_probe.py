"""Training runs killed with SIGKILL at planned moments, each in its own process.

  python -m tests.kill_probe PLAN.json OUT.json

PLAN.json: {"argv": [...], "env": {...}, "runs": [{"name", "workdir", "kill": null | {"at", "step"}}]}.
Runs are forked one after another from this process, which imported attnlab (and tensorboardX,
which imports torch) once, and each runs `python -m experiments.main ARGV --workdir=WORKDIR` as
tests/cli_probe.py does. A run with a kill dies by SIGKILL (no handler, no cleanup) when it
reaches the moment `at` of step `step`:
  torn          half of the step's train_loss line written to metrics.jsonl
  hold          the step's train_loss line written; the run then waits while a second process
                runs the same command on the same workdir (its result is the run's "second"),
                and this process sends the SIGKILL
  save_begun    checkpoints/<step>'s temporary directory created by orbax, nothing in it yet
  save_written  every item of checkpoints/<step> written, not yet renamed into place (committed)
  saved         checkpoints/<step> committed (the steps it replaces may not be deleted yet)
OUT.json gets {name: {"code", "stdout", "stderr", "pid", "saved": {"checkpoints": [...]} (the
entries of that folder when the process ended), "second": {...} for a hold}}.
"""
import json
import os
import signal
import sys
import tempfile
import time

import tensorboardX  # noqa: F401  (the metric writer imports it lazily: ~3 s per run otherwise)
from orbax.checkpoint._src.path import atomicity

import attnlab.data  # noqa: F401
from attnlab import files
from attnlab.train import metric_writer
from tests import cli_probe

PLAN_ENV = "ATTNLAB_TEST_KILL"  # the kill of the forked run, as JSON: {"at", "step", "marker"}


def _kill_now(at: str, step: int):
  plan = json.loads(os.environ.get(PLAN_ENV) or "null")
  if not plan or (plan["at"], plan["step"]) != (at, step):
    return
  if at == "hold":
    open(plan["marker"], "w").close()
    time.sleep(600)  # until the harness kills it
  os.kill(os.getpid(), signal.SIGKILL)


_write = metric_writer.MetricWriter.write


def _patched_write(self, step, scalars):
  plan = json.loads(os.environ.get(PLAN_ENV) or "null")
  if "train_loss" in scalars and plan and (plan["at"], plan["step"]) == ("torn", step):
    line = json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
    files.append_text(self.path, line[:len(line) // 2])
    _kill_now("torn", step)
  _write(self, step, scalars)
  if "train_loss" in scalars:
    _kill_now("hold", step)


_create = atomicity.AtomicRenameTemporaryPath.create
_finalize = atomicity.AtomicRenameTemporaryPath.finalize


def _checkpoint_step(temporary_path):
  """The step of a save to checkpoints/<step> (not its items), else None."""
  final = temporary_path.get_final()
  return int(final.name) if final.parent.name == "checkpoints" and final.name.isdigit() else None


async def _patched_create(self, *args, **kwargs):
  path = await _create(self, *args, **kwargs)
  _kill_now("save_begun", _checkpoint_step(self))
  return path


async def _patched_finalize(self, *args, **kwargs):
  _kill_now("save_written", _checkpoint_step(self))
  await _finalize(self, *args, **kwargs)
  _kill_now("saved", _checkpoint_step(self))


metric_writer.MetricWriter.write = _patched_write
atomicity.AtomicRenameTemporaryPath.create = _patched_create
atomicity.AtomicRenameTemporaryPath.finalize = _patched_finalize


def _saved(workdir) -> dict:
  return {d: sorted(os.listdir(os.path.join(workdir, d)))
          for d in ("checkpoints",) if os.path.isdir(os.path.join(workdir, d))}


def run(plan: dict) -> dict:
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for spec in plan["runs"]:
      name, kill = spec["name"], spec.get("kill")
      probe = {"module": "experiments.main", "argv": plan["argv"] + [f"--workdir={spec['workdir']}"],
               "env": dict(plan.get("env", {}))}
      marker = os.path.join(tmp, f"{name}.held")
      if kill:
        probe["env"][PLAN_ENV] = json.dumps({**kill, "marker": marker})
      pid, paths = cli_probe.fork(probe, tmp, name)
      status, second = None, None
      if kill and kill["at"] == "hold":
        while status is None and not os.path.exists(marker):
          done, found = os.waitpid(pid, os.WNOHANG)
          if done:
            status = found  # it ended before its moment
          else:
            time.sleep(0.02)
        if status is None:  # the run waits at its step: the same command beside it
          other = dict(probe, env=dict(plan.get("env", {})))
          other_pid, other_paths = cli_probe.fork(other, tmp, name + ".second")
          second = cli_probe.result(os.waitpid(other_pid, 0)[1], other_paths)
          os.kill(pid, signal.SIGKILL)
      if status is None:
        status = os.waitpid(pid, 0)[1]
      results[name] = dict(cli_probe.result(status, paths), pid=pid)
      results[name]["saved"] = _saved(spec["workdir"])
      if second is not None:
        results[name]["second"] = second
  return results


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    plan = json.load(f)
  with open(sys.argv[2], "w") as f:
    json.dump(run(plan), f)
