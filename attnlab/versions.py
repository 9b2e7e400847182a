"""What a recording ran with: `versions()` -> {package: version, ..., "commit": git commit or None}.

Written into every comparison's results.json (and the benchmarks' JSON), so a recorded number can be
tied to the code and libraries that made it.
"""
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
