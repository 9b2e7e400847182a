"""When a run counts as solved: config.criterion.

  'task'            (default) the task's criterion (`attnlab.tasks.criterion`), judged at each
                    evaluation on the validation split, e.g. eval_score >= 0.99.
  'hochreiter1997'  Hochreiter & Schmidhuber 1997's stopping rule (experiment 4, the adding
                    problem): "training is stopped once the average training error is below 0.01,
                    and the 2000 most recent sequences were processed correctly". Judged on the
                    training stream at every step, by `TrainingWindow`: met at the first step where
                    the MSE over the most recent WINDOW_SEQUENCES training sequences is
                    < WINDOW_MSE and none of them has |error| >= the task's tolerance
                    (`losses.regression_tolerance`: 0.04 on the hochreiter1997 adding target).
                    Only for regression tasks with a tolerance (adding).

The training step returns sums per batch, not per sequence, so the window is the last
ceil(WINDOW_SEQUENCES / batch_size) steps: at batch 64, 32 steps = 2,048 sequences, a superset of
the paper's 2,000 (a stricter rule by at most batch_size - 1 sequences). The window's state is kept
in every checkpoint's meta (`META_KEY`), so a resumed run stops at the step a run trained straight
would have stopped at.

A K-step dispatch (attnlab.train.dispatch.fused_steps_until) keeps a float32 copy of the windows on
the device (`device_window`) and ends after the first step at which a watched run's window is
`possibly_met`: a superset of TrainingWindow.met (a relative margin DEVICE_MARGIN on the MSE
threshold covers float32 sums), so the host, which still feeds every step to the exact float64
TrainingWindow, sees the rule met only at a dispatch's last step; a false alarm only ends a dispatch
early.
"""
import collections
import math

import jax
import jax.numpy as jnp
import numpy as np

CRITERIA = ("task", "hochreiter1997")
WINDOW_SEQUENCES = 2000
WINDOW_MSE = 0.01
META_KEY = "criterion_window"
# The float32 sum of W <= 2000 nonnegative terms is within W * 2**-24 <= 1.2e-4 (relative) of the
# exact one, and the threshold's product a few ulps: 1e-3 covers both with room to spare.
DEVICE_MARGIN = 1e-3
PADDING = (0.0, 0.0, 1.0)  # an entry of a window not yet full: one wrong sequence, never met


def check(config, spec):
  """ValueError unless config.criterion is one of CRITERIA and applies to the task `spec`."""
  choice = config.get("criterion", "task")
  if choice not in CRITERIA:
    raise ValueError(f"config.criterion={choice!r}; valid choices: {list(CRITERIA)}")
  if choice == "hochreiter1997" and spec.kind != "regression":
    raise ValueError(f"config.criterion={choice!r} needs a regression task with a tolerance "
                     f"(adding); task {spec.name!r} is {spec.kind}: valid choices for it: ['task']")


class TrainingWindow:
  """The running window of the hochreiter1997 criterion over the most recent training steps.

  add(sums) takes one step's metric sums ({'mse': (squared errors, sequences), 'wrong': (wrong,
  sequences)}, as losses.loss_and_metrics returns them, summed over the global batch) and returns
  whether the criterion is met after that step: the window holds `steps` steps, their MSE (sum of
  squared errors / sequences, in float64) is < mse and their wrong count is 0.
  """

  def __init__(self, batch_size: int, sequences: int = WINDOW_SEQUENCES, mse: float = WINDOW_MSE):
    self.steps = -(-sequences // batch_size)
    self.mse = mse
    self.entries = collections.deque(maxlen=self.steps)  # (squared errors, sequences, wrong)

  def add(self, sums) -> bool:
    (sq, count), (wrong, _) = jax.device_get((sums["mse"], sums["wrong"]))
    self.entries.append((float(sq), float(count), float(wrong)))
    return self.met()

  def window_mse(self) -> float:
    count = math.fsum(e[1] for e in self.entries)
    return math.fsum(e[0] for e in self.entries) / count if count else math.nan

  def window_wrong(self) -> int:
    return int(round(math.fsum(e[2] for e in self.entries)))

  def met(self) -> bool:
    return (len(self.entries) == self.steps and self.window_wrong() == 0
            and self.window_mse() < self.mse)

  def state(self) -> dict:
    """{META_KEY: the entries}: JSON-safe, what a checkpoint's meta keeps."""
    return {META_KEY: [list(e) for e in self.entries]}

  def restore(self, meta: dict):
    """Takes the entries of a checkpoint's meta (none there: an empty window)."""
    self.entries.clear()
    self.entries.extend(tuple(float(x) for x in e) for e in meta.get(META_KEY, []))


def make_window(config):
  """The TrainingWindow of config.criterion='hochreiter1997', else None."""
  if config.get("criterion", "task") != "hochreiter1997":
    return None
  return TrainingWindow(config.batch_size, WINDOW_SEQUENCES, WINDOW_MSE)


def device_window(windows: list, vmapped: bool):
  """The host windows of the runs as the device's float32 copy, oldest entry first, padded at the
  front to `steps` entries with PADDING: (steps, 3) for one run, (steps, runs, 3) `vmapped` (each
  entry: squared errors, sequences, wrong); and their thresholds, () or (runs,) float32."""
  rows = [[PADDING] * (w.steps - len(w.entries)) + list(w.entries) for w in windows]
  entries = np.asarray(rows, np.float32).transpose(1, 0, 2)  # float64 of float32 sums: exact
  thresholds = np.asarray([w.mse for w in windows], np.float32)
  return (entries, thresholds) if vmapped else (entries[:, 0], thresholds[0])


def window_entry(sums):
  """One step's entry of the device window from its metric sums ({'mse': (..., 2), 'wrong':
  (..., 2)}): (..., 3) = (squared errors, sequences, wrong)."""
  return jnp.stack([sums["mse"][..., 0], sums["mse"][..., 1], sums["wrong"][..., 0]], axis=-1)


def possibly_met(entries, mse, margin: float = DEVICE_MARGIN):
  """entries (steps, ..., 3) float32, mse (...) -> (...) bool: True wherever TrainingWindow.met can
  be True for these entries (its sums in float64): no wrong sequence (the counts are whole numbers;
  padding counts one) and squared errors < mse * (1 + margin) * sequences."""
  sq, count, wrong = jnp.moveaxis(jnp.sum(entries, axis=0), -1, 0)
  return (wrong < 1) & (sq < mse * (1 + margin) * count)
