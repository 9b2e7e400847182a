"""attnlab.data.prefetch.Prefetcher against grain's ThreadPrefetchIterDataset on the training
input pipeline of a tiny config, in one process (ratios, not absolute times):

  PYTHONPATH=. python -m benchmarks.prefetch_vs_grain [batches] [step_ms]

Each reads `batches` batches of configs/adding.py:lstm (seq_len 100, batch 64) while the consumer
waits `step_ms` per batch, as the device computes a step (the GIL is free meanwhile); repeats
alternate so load on the machine hits both alike. Prints the median seconds of each and the ratio.
"""
import statistics
import sys
import time

import grain

from attnlab import data
from attnlab.data.prefetch import Prefetcher


def loader():
  ds, _ = data.make_dataset("adding", {"seq_len": 100}, split="train", batch_size=64, seed=0,
                            read_threads=0)
  return ds


def consume(it, batches: int, step_s: float) -> float:
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
    time.sleep(step_s)
  return time.perf_counter() - start


def compare(batches: int = 200, step_s: float = 0.002, size: int = 4, repeats: int = 5) -> dict:
  """{'attnlab': median s, 'grain': median s, 'ratio': grain / attnlab}."""
  times = {"attnlab": [], "grain": []}
  for _ in range(repeats):
    ours = Prefetcher(iter(loader()), size)
    times["attnlab"].append(consume(ours, batches, step_s))
    ours.close()
    theirs = iter(grain.experimental.ThreadPrefetchIterDataset(loader(), prefetch_buffer_size=size))
    times["grain"].append(consume(theirs, batches, step_s))
  out = {k: statistics.median(v) for k, v in times.items()}
  return dict(out, ratio=out["grain"] / out["attnlab"])


if __name__ == "__main__":
  args = sys.argv[1:]
  print(compare(int(args[0]) if args else 200, float(args[1]) / 1000 if len(args) > 1 else 0.002))
