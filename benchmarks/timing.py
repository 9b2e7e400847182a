"""Timing helpers: interleaved repeats of several callables, medians, and the matmul peak.

`interleaved` warms every callable up, then runs `repeats` rounds in which each callable runs once,
in an order that rotates from round to round, so slow drifts of the machine (other jobs, thermal)
hit every candidate alike; compare candidates by the median of their rounds. `pause_s` sleeps
(untimed) before each call: thread pools spin-wait for work after a call returns (PyTorch's OpenMP
threads, and XLA's), so without a pause a candidate can be timed while the previous one's idle
threads still hold the cores.
"""
import statistics
import time
from typing import Callable, Dict, List

import jax
import jax.numpy as jnp
import numpy as np


def interleaved(fns: Dict[str, Callable[[], None]], repeats: int,
                warmup: int = 1, pause_s: float = 0.0) -> Dict[str, List[float]]:
  """{name: blocking callable} -> {name: seconds of each of `repeats` rounds}."""
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  names = list(fns)
  times = {name: [] for name in names}
  for r in range(repeats):
    for name in names[r % len(names):] + names[:r % len(names)]:
      if pause_s:
        time.sleep(pause_s)
      start = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - start)
  return times


def median(xs) -> float:
  return float(statistics.median(xs))


def spread(xs) -> float:
  """Relative spread of repeats: (max - min) / median."""
  return float((max(xs) - min(xs)) / statistics.median(xs)) if len(xs) > 1 else 0.0


def matmul_peak(sizes=(1024, 2048, 3072), repeats: int = 5) -> dict:
  """The f32 matmul rate of this machine: GFLOP/s of jnp.dot (n,n)x(n,n), best size by median."""
  rates = {}
  for n in sizes:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(jnp.dot)
    times = interleaved({"mm": lambda: mm(a, a).block_until_ready()}, repeats)["mm"]
    rates[n] = 2 * n**3 / median(times) / 1e9
  best = max(rates, key=rates.get)
  return {"gflops": rates[best], "n": best, "by_size": rates}
