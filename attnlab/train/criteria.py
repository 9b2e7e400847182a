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
"""
import collections
import math

import jax

CRITERIA = ("task", "hochreiter1997")
WINDOW_SEQUENCES = 2000
WINDOW_MSE = 0.01
META_KEY = "criterion_window"


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
