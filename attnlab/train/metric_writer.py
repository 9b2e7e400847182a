"""Metrics of a run: TensorBoard event files (tensorboardX), `metrics.jsonl`, and console progress.

Only process 0 writes. Each JSONL line is one object with `step` and the logged scalars, e.g.
{"step": 200, "train_loss": 0.05, "grad_norm": 1.3, "grad_norm_clipped": 1.0, "learning_rate": 0.001,
"steps_per_sec": 31.2}
or {"step": 200, "eval_loss": 0.04, "eval_score": 0.93, "eval_accuracy": ...}.
"""
import json
import math
import sys
import time

import jax

from attnlab import files


def read_jsonl(path: str) -> list:
  """All records of a metrics.jsonl file (a torn last line, from a killed run, is skipped)."""
  rows = []
  if not files.exists(path):
    return rows
  for line in files.read_text(path).splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows


class MetricWriter:
  """Writes scalars to TensorBoard and JSONL (process 0 only) and prints progress with an ETA."""

  def __init__(self, workdir: str, total_steps: int, enabled: bool = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.total_steps = total_steps
    self.path = files.join(workdir, "metrics.jsonl")
    self._tb = None
    self._start = None
    if self.enabled:
      files.makedirs(workdir)
      from tensorboardX import SummaryWriter  # imported lazily: it is slow to import
      self._tb = SummaryWriter(files.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    clean = {k: (float(v) if v is not None else None) for k, v in scalars.items()}
    files.append_text(self.path, json.dumps({"step": int(step), **clean}) + "\n")
    for k, v in clean.items():
      if v is not None and math.isfinite(v):
        self._tb.add_scalar(k, v, int(step))
    self._tb.flush()

  def progress(self, step: int, first_step: int, text: str = ""):
    """One console line: step/total, rate and ETA, and `text`."""
    if not self.enabled:
      return
    now = time.time()
    if self._start is None or step <= first_step:
      self._start = (now, step)
      rate, eta = 0.0, float("nan")
    else:
      rate = (step - self._start[1]) / max(now - self._start[0], 1e-9)
      eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
    frac = step / max(self.total_steps, 1)
    bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
    eta_text = "?" if not math.isfinite(eta) else time.strftime("%H:%M:%S", time.gmtime(eta))
    print(f"[{bar}] {step}/{self.total_steps} {rate:.1f} steps/s ETA {eta_text} {text}",
          file=sys.stderr, flush=True)

  def close(self):
    if self._tb is not None:
      self._tb.close()
