"""Command-line probes, each in its own process, forked from one that imported attnlab once.

  python -m tests.cli_probe PROBES.json OUT.json

PROBES.json: [{"name": ..., "module": "experiments.main" | "experiments.sweep", "argv": [...],
"env": {...}, "console": false, "file_size_limit": bytes (optional, as `ulimit -f`), "cwd": another
working directory (optional), "before": [a command the parent runs first, e.g. a remount]
(optional)}]. Each probe runs in a forked child exactly as `python -m MODULE ARGV...` would (the
entry module is imported in the child, so errors raised while it defines its flags are seen too);
"console": true calls experiments.main.console_entry with sys.argv[0] = 'attnlab', as the installed
console script does. OUT.json gets {name: {"code", "stdout", "stderr", "seconds" (from the fork to
the exit)}}. Forking saves the ~3 s import of jax and attnlab per probe.
"""
import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
import traceback

from attnlab import configs  # noqa: F401  (imported once, before forking: the heavy part)
import ml_collections.config_flags  # noqa: F401
from attnlab import cli, compile_cache, experiment, sweep  # noqa: F401


def _child(probe, out, err):
  os.dup2(out, 1)
  os.dup2(err, 2)
  os.environ.update(probe.get("env", {}))
  if probe.get("cwd"):  # as if typed in another directory (attnlab stays importable)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.chdir(probe["cwd"])
  if probe.get("file_size_limit"):
    resource.setrlimit(resource.RLIMIT_FSIZE, (probe["file_size_limit"],) * 2)
  code = 0
  try:
    if probe.get("console"):
      sys.argv = ["attnlab", *probe["argv"]]
      sys.modules["__main__"].__doc__ = None  # the generated console script has no docstring
      from experiments.main import console_entry
      console_entry()
    else:
      sys.argv = [probe["module"].replace(".", "/") + ".py", *probe["argv"]]
      runpy.run_module(probe["module"], run_name="__main__", alter_sys=True)
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if not isinstance(e.code, (int, type(None))):
      print(e.code, file=sys.stderr)
  except BaseException:  # what Python would print for an uncaught exception
    traceback.print_exc()
    code = 1
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def fork(probe: dict, tmp: str, name: str):
  """Starts `probe` in a forked child writing to tmp/name.{out,err}; returns (pid, the two paths)."""
  paths = [os.path.join(tmp, f"{name}.{s}") for s in ("out", "err")]
  fds = [os.open(p, os.O_WRONLY | os.O_CREAT) for p in paths]
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    _child(probe, *fds)
  for fd in fds:
    os.close(fd)
  return pid, paths


def result(status: int, paths) -> dict:
  """A finished child's exit code (from os.waitpid's status) and what it printed."""
  out, err = (open(p).read() for p in paths)
  return {"code": os.waitstatus_to_exitcode(status), "stdout": out, "stderr": err}


def run(probes: list) -> dict:
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for probe in probes:
      if probe.get("before"):
        subprocess.run(probe["before"], check=True)
      start = time.time()
      pid, paths = fork(probe, tmp, probe["name"])
      results[probe["name"]] = dict(result(os.waitpid(pid, 0)[1], paths),
                                    seconds=time.time() - start)
  return results

if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    probes = json.load(f)
  with open(sys.argv[2], "w") as f:
    json.dump(run(probes), f)
