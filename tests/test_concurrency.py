"""The comparison's concurrent training (attnlab.comparison.common.training_slots / run_concurrently)."""
import signal
import threading
import time

import pytest

from attnlab.comparison import common
from attnlab.train import trainer


def test_workers_must_be_a_positive_integer():
  for bad in (0, -2, 1.5, "2"):
    with pytest.raises(ValueError, match="comparison.workers"):
      with common.training_slots(bad):
        pass


def test_one_slot_runs_calls_in_order_in_this_thread():
  seen = []
  out = common.run_concurrently([lambda i=i: seen.append((i, threading.current_thread())) or i
                                 for i in range(3)])
  assert out == [0, 1, 2]
  assert [s[0] for s in seen] == [0, 1, 2] and {s[1] for s in seen} == {threading.current_thread()}


def test_slots_bound_the_trainings_that_run_at_once(monkeypatch):
  running, peak, lock = [0], [0], threading.Lock()
  # each training waits inside its slot until a second one is running beside it: two overlap however
  # slowly the threads are scheduled, and with one slot the barrier breaks (after 60 s) instead
  pair = threading.Barrier(2, timeout=60)

  def fake_train(configs, workdirs, hooks):
    with lock:
      running[0] += 1
      peak[0] = max(peak[0], running[0])
    pair.wait()
    with lock:
      running[0] -= 1
    return [{"workdir": w} for w in workdirs]

  monkeypatch.setattr(common, "train_seeds", fake_train)
  calls = [lambda i=i: common._train_with_flow([{}], [f"w{i}"]) for i in range(6)]
  with common.training_slots(2):
    out = common.run_concurrently(calls)
  assert out == [[{"workdir": f"w{i}"}] for i in range(6)]  # in call order
  assert peak[0] == 2  # two at a time, never three
  assert common._SLOTS["workers"] == 1  # restored


def test_a_failing_call_stops_the_others_and_its_error_is_raised():
  started, stopped = threading.Event(), threading.Event()

  def waits_for_stop():  # as a trainer in a thread does: raises Preempted when stopped
    started.set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
      if trainer.stop_requested():
        stopped.set()
        raise trainer.Preempted(trainer.stop_requested(), 3, ["w"])
      time.sleep(0.01)
    return "never stopped"

  def fails():  # once the other is training, so it is the one stopped
    assert started.wait(60)
    raise RuntimeError("boom")

  with common.training_slots(2), pytest.raises(RuntimeError, match="boom"):
    common.run_concurrently([waits_for_stop, fails])
  assert stopped.is_set()
  assert trainer.stop_requested() == 0  # cleared on the way out


def test_a_signal_reaches_trainers_in_threads_and_waiting_ones_do_not_start(monkeypatch):
  monkeypatch.setattr(common, "train_seeds", lambda *a: [{}])
  with trainer.stop_threads_on_signal():
    signal.raise_signal(signal.SIGTERM)  # the handler only records it
    assert trainer.stop_requested() == signal.SIGTERM
    with pytest.raises(trainer.Preempted, match="before w0 started training") as e:
      common._train_with_flow([{}], ["w0"])
    assert e.value.exit_code == 128 + signal.SIGTERM
  assert trainer.stop_requested() == 0
