"""Batches made ahead in a background thread, so the next batch is ready when a train step ends.

  it = Prefetcher(iter(loader), size=2)   # any iterator with get_state / set_state (grain's)
  batch = next(it)
  state = it.get_state()                  # save with the checkpoint ...
  it.set_state(state)                     # ... and restore on resume
  it.close()

The thread calls next() on the wrapped iterator while the caller's train step runs (JAX releases
the GIL while it computes), keeping up to `size` batches queued. `get_state()` is the wrapped
iterator's state after the last batch *returned*, not after the ones made ahead, so a checkpoint
resumes exactly where the consumer was. An error in the thread ends it and is raised by the next
`next()` and by every one after it (as the end of the data gives StopIteration every time).
size=0 makes each batch on demand in the caller's thread (no thread, same batches and states).

Why not grain's `grain.experimental.ThreadPrefetchIterDataset` (grain 0.2.18), which does the
same: measured with `python -m benchmarks.prefetch_vs_grain` (configs/adding.py:lstm's pipeline,
seq_len 100, batch 64, 200 batches, size 4, median of 5 alternating repeats, one process, 2 CPU
cores under load average ~8): grain's took 1.28x as long with a 2 ms step between batches and
1.23x with none. This thread stays while that holds; rerun the benchmark when grain changes.
"""
import queue
import threading
from typing import Any, Callable, Optional

_END = object()


def _state_of(iterator):
  return iterator.get_state() if hasattr(iterator, "get_state") else None


class Prefetcher:
  """Wraps a resumable iterator; see the module docstring."""

  def __init__(self, iterator, size: int = 2, transform: Optional[Callable[[Any], Any]] = None):
    if not isinstance(size, int) or size < 0:
      raise ValueError(f"Prefetcher: size must be an integer >= 0, got {size!r}")
    self._it, self._size, self._transform = iterator, size, transform or (lambda b: b)
    self._state = _state_of(iterator)
    self._start()

  def _start(self):
    self._thread = None
    if not self._size:
      return
    self._queue = queue.Queue(self._size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, daemon=True, name="attnlab-prefetch")
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _fill(self):
    try:
      while not self._stop.is_set():
        batch = self._transform(next(self._it))
        state = _state_of(self._it)
        if not self._put((batch, state)):
          return
    except StopIteration:
      self._put(_END)
    except BaseException as e:  # pylint: disable=broad-except
      self._put(e)

  def __iter__(self):
    return self

  def __next__(self):
    if self._thread is None:  # size 0: in this thread
      batch = self._transform(next(self._it))
      self._state = _state_of(self._it)
      return batch
    item = self._queue.get()
    if item is _END:
      self._queue.put(_END)
      raise StopIteration
    if isinstance(item, BaseException):
      self._queue.put(item)  # the thread has ended: every later next() raises it again
      raise item
    batch, self._state = item
    return batch

  def get_state(self):
    """The wrapped iterator's state after the last batch returned by next()."""
    return self._state

  def set_state(self, state):
    """Drops the batches made ahead and continues from `state`."""
    self.close()
    self._it.set_state(state)
    self._state = state
    self._start()

  def close(self):
    """Stops the thread (batches made ahead are dropped)."""
    if self._thread is not None:
      self._stop.set()
      self._thread.join()
