"""attnlab: why recurrent networks fail on long-range dependencies, and how attention fixes that.

Layers, from the math up: `ops` (pure functions) <- `models` (Flax Linen modules and `build`);
`tasks` (NumPy generators) <- `data` (tfds builders, grain pipelines); `train` (runner) <-
`analysis` (loading runs, gradient flow). `load_run` is importable from the top for notebooks.
"""
from attnlab import layout

layout.install_finder()  # attnlab.configs, .experiments, ... in a checkout without an install

from attnlab import models, ops  # noqa: E402

__version__ = "0.1.0"


def load_run(workdir: str, step="best"):
  """See `attnlab.analysis.runs.load_run` (imported lazily: it pulls in the training stack)."""
  from attnlab.analysis.runs import load_run as _load_run
  return _load_run(workdir, step)
