"""What a recording ran with: `versions()` -> {package: version, ..., "commit": git commit or None};
`device()` -> the backend, its devices' kind and count, the host's processes and CPU count.

Written into every comparison's results.json (and the benchmarks' JSON), and one line per start
into every run's `environment.jsonl` beside its config.json (`record_start`), so a recorded number
can be tied to the code, libraries and hardware that made it, a resumed run to each of its sittings.
"""
import datetime
import json
import importlib.metadata
import os
import platform
import subprocess

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "grain",
            "tensorflow-datasets")


def _commit():
  """The git commit of the attnlab checkout (with '+dirty' for uncommitted changes), or None."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                            text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None  # not a git checkout (an installed wheel), or no git
  return commit + ("+dirty" if dirty else "")


def versions() -> dict:
  """{python, attnlab, each of PACKAGES (None where not installed), commit}."""
  from attnlab import __version__
  out = {"python": platform.python_version(), "attnlab": __version__}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  out["commit"] = _commit()
  return out


def device() -> dict:
  """{backend, device_kind, device_count, process_count, host_cpus} of this process's JAX."""
  import jax
  devices = jax.devices()
  return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "device_count": len(devices), "process_count": jax.process_count(),
          "host_cpus": os.cpu_count()}


ENVIRONMENT_FILE = "environment.jsonl"


def record_start(workdir: str, step: int, _cache={}):
  """Appends {started (UTC), step, versions, device} to workdir/environment.jsonl: one line per
  start of the run (a fresh run at step 0, each resume at its step)."""
  from attnlab import files
  if "env" not in _cache:  # one git call and one metadata scan per process
    _cache["env"] = {"versions": versions(), "device": device()}
  line = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "step": int(step), **_cache["env"]}
  files.append_text(files.join(workdir, ENVIRONMENT_FILE), json.dumps(line) + "\n")
