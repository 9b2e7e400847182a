"""Prefetching yields the same batches as the wrapped iterator and resumes from the consumer's state."""
import threading

import numpy as np
import pytest

from attnlab import data
from attnlab.data.prefetch import Prefetcher


class Counter:
  """A resumable iterator of 0, 1, ..., n - 1 (or failing at `fail_at`)."""

  def __init__(self, n=None, fail_at=None):
    self.i, self.n, self.fail_at = 0, n, fail_at

  def __next__(self):
    if self.n is not None and self.i >= self.n:
      raise StopIteration
    if self.i == self.fail_at:
      raise RuntimeError("boom")
    self.i += 1
    return self.i - 1

  def get_state(self):
    return {"i": self.i}

  def set_state(self, state):
    self.i = state["i"]


@pytest.mark.parametrize("size", [0, 3])
def test_same_items_state_of_the_consumer_and_resume(size):
  it = Prefetcher(Counter(), size=size, transform=lambda i: 2 * i)
  assert [next(it) for _ in range(4)] == [0, 2, 4, 6]
  assert it.get_state() == {"i": 4}  # not the state after the batches made ahead
  it.set_state({"i": 10})
  assert next(it) == 20 and it.get_state() == {"i": 11}
  it.close()


def test_bad_size_is_named():
  with pytest.raises(ValueError, match="size must be an integer >= 0, got -1"):
    Prefetcher(Counter(), size=-1)


def test_end_and_errors_reach_the_consumer():
  assert list(Prefetcher(Counter(n=3))) == [0, 1, 2]
  it = Prefetcher(Counter(fail_at=2))
  assert next(it) == 0 and next(it) == 1
  with pytest.raises(RuntimeError, match="boom"):
    next(it)


@pytest.mark.parametrize("size", [0, 2])
def test_every_next_after_an_error_raises_it_again(size):
  """Not a next() that waits forever for a thread that has ended."""
  it = Prefetcher(Counter(fail_at=1), size=size)
  assert next(it) == 0
  outcomes = []

  def consume():
    for _ in range(3):
      try:
        next(it)
        outcomes.append("batch")
      except RuntimeError as e:
        outcomes.append(str(e))

  consumer = threading.Thread(target=consume, daemon=True)
  consumer.start()
  consumer.join(timeout=10)
  assert not consumer.is_alive(), f"next() blocked after {outcomes}"
  assert outcomes == ["boom"] * 3
  it.close()


def test_grain_loader_batches_and_state_match():
  loader, _ = data.make_dataset("adding", dict(seq_len=8), batch_size=4, seed=1)
  plain, ahead = iter(loader), Prefetcher(iter(loader))
  for _ in range(3):
    a, b = next(plain), next(ahead)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  state = ahead.get_state()
  resumed = iter(loader)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["inputs"], next(plain)["inputs"])
  ahead.close()
