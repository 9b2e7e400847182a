"""Runs one benchmark task in a fresh Python process and reads its peak memory.

`run_child(task)` starts `python -m benchmarks.child '<task json>'`, polls the child's resident set
size (VmRSS in /proc/<pid>/status) every 20 ms and kills it if it exceeds `mem_cap` bytes, so a
task that would exhaust the machine (plain attention at T=16k) fails alone instead of taking the
benchmark or other jobs down. The child reports its results as one JSON line, with its own VmHWM
(the high-water mark of the whole process: Python, JAX, the compiled program and its buffers); the
parent takes the larger of that and the largest RSS it polled (all there is for a killed child) and,
on failure, says why. (Not ru_maxrss: after fork + exec Linux reports the larger of the child's peak
and the parent's RSS at the fork.)
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional

PREFIX = "BENCHMARK_RESULT "
GiB = 1 << 30


def _rss(pid: int) -> int:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def default_mem_cap() -> int:
  """60% of the memory available now, at most 16 GiB."""
  try:
    with open("/proc/meminfo") as f:
      info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return int(min(16 * GiB, 0.6 * info["MemAvailable"]))
  except (OSError, KeyError):
    return 8 * GiB


def run_child(task: dict, timeout: float = 900.0, mem_cap: Optional[int] = None) -> dict:
  """Runs `task` in a child process; returns its result dict plus 'peak_rss_bytes' and 'status'."""
  mem_cap = mem_cap or default_mem_cap()
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen([sys.executable, "-m", f"{__package__}.child", json.dumps(task)],
                            stdout=out, stderr=err, text=True, env=env, cwd=root)
    start, status, max_seen = time.time(), "ok", 0
    while True:
      pid, code = os.waitpid(proc.pid, os.WNOHANG)
      if pid:
        break
      rss = _rss(proc.pid)
      max_seen = max(max_seen, rss)
      if rss > mem_cap:
        status = f"killed: resident memory passed the {mem_cap / GiB:.1f} GiB cap"
      elif time.time() - start > timeout:
        status = f"killed: ran past {timeout:.0f} s"
      if status != "ok":
        proc.kill()
        _, code = os.waitpid(proc.pid, 0)
        break
      time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(code)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  result = {}
  for line in stdout.splitlines():
    if line.startswith(PREFIX):
      result = json.loads(line[len(PREFIX):])
  if status == "ok" and proc.returncode != 0:
    last = [l for l in stderr.strip().splitlines() if l.strip()][-1:] or ["no output"]
    status = f"failed (exit {proc.returncode}): {last[0][:300]}"
  result.update(status=status, peak_rss_bytes=max(result.get("vm_hwm_bytes", 0), max_seen),
                wall_s=time.time() - start)
  return result


def report(result: dict):
  """Called by the child: prints its result, and its peak RSS, where `run_child` finds it."""
  print(PREFIX + json.dumps(dict(result, vm_hwm_bytes=vm_status()["VmHWM"])), flush=True)


def vm_status() -> dict:
  """The calling process's current and peak resident memory (bytes)."""
  out = {}
  with open("/proc/self/status") as f:
    for line in f:
      key = line.split(":")[0]
      if key in ("VmRSS", "VmHWM"):
        out[key] = int(line.split()[1]) * 1024
  return out
