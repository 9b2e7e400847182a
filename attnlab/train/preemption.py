"""When to save and stop: SIGTERM (preemption) or Ctrl-C, decided once per dispatch, pod-wide.

  with StopSignal() as stop:
    while training:
      ...                           # one dispatch of K steps
      signum = stop.reached()       # every process asks at every dispatch boundary
      if signum: save, then raise Preempted(signum, ...)

One process: SIGTERM and SIGINT set a flag (Python handlers, as before); a second Ctrl-C stops at
once (KeyboardInterrupt). Trainers in threads other than the main one read the flag that
`stop_threads_on_signal` sets in the main thread.

Several processes (jax.distributed): a SIGTERM reaches one host, but the save is collective, so
the hosts must agree on the step or they hang in the save. The decision is JAX's preemption
sync point (`jax.experimental.multihost_utils.reached_preemption_sync_point`): the preemption
sync manager that `jax.distributed.initialize` starts (config `jax_enable_preemption_service`,
on by default) installs its own SIGTERM handler, tells the coordination service, and every host
then agrees on the call after the furthest host's current one; each host's `reached()` is True
at that same call. JAX compares the counter it is given with (furthest counter + 1) for
equality, so the counter must grow by exactly one per call: `reached()` counts dispatches (all
processes run the same dispatch schedule from the same step, so dispatch n is the same step
everywhere); steps would skip the sync point whenever a dispatch holds several steps. SIGTERM is
therefore left to JAX's handler here (a Python handler would replace it); Ctrl-C on one host
sends that host SIGTERM, so it too stops the whole pod at one step (the host where it was pressed
exits with 130, the others with 143). With the preemption service disabled, each host falls back
to its own flag (a warning says the hosts may then disagree).
"""
import contextlib
import logging
import os
import signal

import jax
from jax.experimental import multihost_utils

# The stop flag of trainers running in threads other than the main one (signal handlers can only
# be installed there): set by the handler `stop_threads_on_signal` installs.
_THREADS_FLAG = {"set": 0}


@contextlib.contextmanager
def stop_threads_on_signal():
  """In the main thread, while trainers run in other threads (attnlab.comparison with workers > 1):
  SIGTERM or Ctrl-C makes each of them save a checkpoint at its next step and raise Preempted.
  Yields stop(): the same without a signal (e.g. when another thread failed)."""
  def handler(signum, frame):
    _THREADS_FLAG["set"] = _THREADS_FLAG["set"] or signum

  _THREADS_FLAG["set"] = 0
  previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield lambda: handler(signal.SIGTERM, None)
  finally:
    for signum, old in previous.items():
      signal.signal(signum, old)
    _THREADS_FLAG["set"] = 0


def stop_requested() -> int:
  """The signal number that stopped the trainers in threads (`stop_threads_on_signal`), else 0."""
  return _THREADS_FLAG["set"]


def pod_wide() -> bool:
  """True when the stop is decided by JAX's preemption sync point: several processes, with the
  preemption service on."""
  return jax.process_count() > 1 and bool(jax.config.jax_enable_preemption_service)


class StopSignal:
  """A context manager: installs the handlers on entry, restores the previous ones on exit.
  `reached()`, once per dispatch boundary on every process: the signal number to stop with, or 0.
  `flag`: {'set': signal number or 0}, this process's own signal."""

  def __init__(self):
    self.flag, self.dispatches, self._previous = {"set": 0}, 0, {}
    self.pod_wide = pod_wide()
    if jax.process_count() > 1 and not self.pod_wide:
      logging.warning("jax_enable_preemption_service is off: each host decides alone when to "
                      "save on SIGTERM, and the hosts may disagree on the step")

  def _handler(self, signum, frame):
    if signum == signal.SIGINT and self.flag["set"] == signal.SIGINT:
      raise KeyboardInterrupt
    self.flag["set"] = self.flag["set"] or signum
    if self.pod_wide and signum == signal.SIGINT:  # JAX's handler tells the other hosts
      os.kill(os.getpid(), signal.SIGTERM)

  def __enter__(self):
    signums = (signal.SIGINT,) if self.pod_wide else (signal.SIGTERM, signal.SIGINT)
    try:
      for signum in signums:
        self._previous[signum] = signal.signal(signum, self._handler)
    except ValueError:  # not the main thread: the flag stop_threads_on_signal's handler sets
      self.flag = _THREADS_FLAG
    return self

  def __exit__(self, *exc):
    for signum, old in self._previous.items():
      signal.signal(signum, old)
    self._previous = {}

  def reached(self) -> int:
    """The signal to save and stop with at this dispatch boundary (0: go on)."""
    if not self.pod_wide:
      return self.flag["set"]
    self.dispatches += 1
    if multihost_utils.reached_preemption_sync_point(self.dispatches):
      return self.flag["set"] or signal.SIGTERM
    return 0
