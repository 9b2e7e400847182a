"""attnlab: why recurrent networks fail on long-range dependencies, and how attention fixes that.

Layers, from the math up: `ops` (pure functions) <- `models` (Flax Linen modules and `build`);
`tasks` (NumPy generators) <- `data` (tfds builders, grain pipelines).
"""
from attnlab import models, ops

__version__ = "0.1.0"
