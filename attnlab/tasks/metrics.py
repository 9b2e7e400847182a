"""NumPy metric helpers for the tasks (host side, for evaluation reports)."""

import numpy as np

from attnlab.tasks.adding import ADDING_TOLERANCE


def adding_solved(pred, target, tol=ADDING_TOLERANCE):
  """bool (n,): |pred - target| < tol per sequence (Hochreiter & Schmidhuber's
  0.04 on their target scale; see attnlab.tasks.adding)."""
  return np.abs(np.asarray(pred) - np.asarray(target)) < tol


def masked_accuracy(pred, target, mask):
  """Fraction of positions with mask > 0 where the int class pred == target."""
  mask = np.asarray(mask) > 0
  return float((np.asarray(pred) == np.asarray(target))[mask].mean())


def exact_match(pred, target, mask):
  """bool (n,): every masked position of example i is right; inputs (n, T)."""
  wrong = (np.asarray(pred) != np.asarray(target)) & (np.asarray(mask) > 0)
  return ~wrong.any(axis=-1)


def accuracy_by_length(correct, lengths):
  """{length: mean of correct} over the examples of each length; both (n,)."""
  correct = np.asarray(correct, np.float64)
  lengths = np.asarray(lengths)
  return {int(length): float(correct[lengths == length].mean())
          for length in np.unique(lengths)}
