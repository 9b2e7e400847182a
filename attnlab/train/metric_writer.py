"""Metrics of a run: TensorBoard event files (tensorboardX), `metrics.jsonl`, and console progress
(tqdm: a bar on a terminal, plain labelled lines elsewhere).

Only process 0 writes. Each JSONL line is one object with `step` and the logged scalars, e.g.
{"step": 200, "train_loss": 0.05, "grad_norm": 1.3, "grad_norm_clipped": 1.0, "learning_rate": 0.001,
"steps_per_sec": 31.2}
or {"step": 200, "eval_loss": 0.04, "eval_score": 0.93, "eval_accuracy": ...}.

A resumed run starts from its checkpoint at `resume_step`, so what a killed run logged after that
step is logged again: the writer first cuts every `*.jsonl` of the workdir back to resume_step
(metrics.jsonl, hooks' files such as grad_flow.jsonl; a torn last line goes too), and TensorBoard,
whose event files cannot be cut, gets a new file that starts with a purge at resume_step + 1
(tensorboardX's `purge_step`): TensorBoard then hides the older events from that step on. Each
writer's file name ends in its start time in nanoseconds and its pid, so no writer truncates another's.
"""
import json
import math
import os
import sys
import time

import jax
import tqdm

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


def truncate_jsonl(path: str, last_step) -> int:
  """Keeps the complete records of `path` with step <= last_step (none if last_step is None).

  A torn last line (a run killed while writing) is dropped, so the next record starts on a line
  of its own. The file is replaced whole (atomically on a local disk). Returns the lines dropped.
  """
  if not files.exists(path):
    return 0
  lines = files.read_text(path).split("\n")
  torn = lines.pop()  # "" when the file ends with a newline
  keep = []
  for line in lines + ([torn] if torn else []):
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if last_step is not None and isinstance(row, dict) and row.get("step", 0) <= last_step:
      keep.append(line)
  dropped = len(lines) + bool(torn) - len(keep)
  if dropped or torn:
    text = "".join(line + "\n" for line in keep)
    if files.is_remote(path):
      files.write_text(path, text)
    else:
      with open(path + ".tmp", "w") as f:
        f.write(text)
      os.replace(path + ".tmp", path)
  return dropped


class MetricWriter:
  """Writes scalars to TensorBoard and JSONL (process 0 only) and prints progress with an ETA.

  resume_step: the checkpoint step the run continues from (None: the run starts afresh); what
  an earlier, killed run logged after it is removed first. label: what starts each progress line,
  e.g. 'lstm seed 1' (several runs' lines interleave: seeds trained together, comparisons in
  threads).
  """

  def __init__(self, workdir: str, total_steps: int, enabled: bool = None, resume_step: int = None,
               label: str = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.label = label
    self.total_steps = total_steps
    self.path = files.join(workdir, "metrics.jsonl")
    self._tb = None
    self._bar = None  # the tqdm bar, on a terminal
    self._opened = time.time()  # the rate of a first progress line past the first step counts from here
    if self.enabled:
      files.makedirs(workdir)
      for name in files.listdir(workdir):
        if name.endswith(".jsonl"):
          truncate_jsonl(files.join(workdir, name), resume_step)
      from tensorboardX import SummaryWriter  # imported lazily: it is slow to import
      logdir = files.join(workdir, "tensorboard")
      purge = (0 if resume_step is None else resume_step + 1) if files.listdir(logdir) else None
      # tensorboardX names a file by the whole second and the host and opens it with 'wb': a
      # writer started in the same second as a killed one would truncate its events. The start time
      # in nanoseconds, then the pid, make each writer's file its own and keep name order = time
      # order (TensorBoard reads the files in name order).
      self._tb = SummaryWriter(logdir, purge_step=purge,
                               filename_suffix=f".{time.time_ns()}.{os.getpid()}")

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    clean = {k: (float(v) if v is not None else None) for k, v in scalars.items()}
    files.append_text(self.path, json.dumps({"step": int(step), **clean}) + "\n")
    for k, v in clean.items():
      if v is not None and math.isfinite(v):
        self._tb.add_scalar(k, v, int(step))
    self._tb.flush()

  def progress(self, step: int, first_step: int, text: str = "", keep: bool = False):
    """Progress at `step` of a run that started (or resumed) at `first_step`, with `text`.

    On a terminal: a tqdm bar per run, labelled, with its rate and ETA (`keep`: also a line that
    stays above the bars, e.g. an evaluation). Otherwise (a file, a pipe, a notebook's captured
    stderr): one plain line per call, tqdm's meter without the bar and carriage returns, e.g.
    'lstm seed 1:  50% 20/40 [00:12<00:12,  1.63step/s, loss 0.1251]'."""
    if not self.enabled:
      return
    if self._bar is None and _interactive():
      self._bar = tqdm.tqdm(total=self.total_steps, initial=first_step, desc=self.label,
                            unit="step", file=sys.stderr, dynamic_ncols=True)
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(text)
      if keep:
        self._bar.write(f"{self._prefix()}step {step}: {text}", file=sys.stderr)
      return
    elapsed = max(time.time() - self._opened, 1e-9)
    # the rate since the writer opened (a run whose first line is its last step still has one)
    rate = (step - first_step) / elapsed if step > first_step else None
    line = tqdm.tqdm.format_meter(step, self.total_steps, elapsed, prefix=self.label or "",
                                  unit="step", rate=rate, initial=first_step, postfix=text or None,
                                  ncols=0)
    print(line, file=sys.stderr, flush=True)

  def note(self, text: str):
    """One line about the run (e.g. 'resumed from step 200 (.../checkpoints/200)'), labelled."""
    if not self.enabled:
      return
    (self._bar.write if self._bar is not None else print)(f"{self._prefix()}{text}",
                                                           file=sys.stderr)

  def _prefix(self) -> str:
    return f"{self.label}: " if self.label else ""

  def close(self):
    if self._bar is not None:
      self._bar.close()
    if self._tb is not None:
      self._tb.close()


def _interactive() -> bool:
  """True when stderr is a terminal (tqdm's redrawn bar); False for files, pipes and notebooks."""
  return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
