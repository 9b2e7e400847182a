"""Crash-safe, single-writer workdirs: the lock, metrics cut back on resume, Ctrl-C saves."""
import glob
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import jax
import ml_collections
import pytest

import attnlab
from attnlab.train import metric_writer, run_dir, train_and_evaluate
from attnlab.train.workdir_lock import WorkdirInUse, WorkdirLock
from attnlab.configs import adding
from tests.test_train import logged_every_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, ATTNLAB_COMPILATION_CACHE="off")


def rows(workdir, name="metrics.jsonl"):
  """Every line of a JSONL file, parsed (a glued or torn line fails here)."""
  with open(os.path.join(workdir, name)) as f:
    return [json.loads(line) for line in f.read().splitlines()]


def steps_of(records, key="train_loss"):
  return [r["step"] for r in records if key in r]


def tensorboard_steps(workdir, tag="train_loss") -> list:
  """The steps of `tag` as TensorBoard shows them: event files in name order, each SessionLog
  START purging the events at and after its step (what tensorboardX's purge_step writes)."""
  from tensorboardX.proto import event_pb2
  shown = []
  for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):  # TFRecord: length (8 bytes), its CRC (4), the event, its CRC (4)
      n = struct.unpack("<Q", data[i:i + 8])[0]
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += n + 16
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        shown = [s for s in shown if s < event.step]
      shown += [event.step for v in event.summary.value if v.tag == tag]
  return shown


def test_second_process_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from attnlab.train.workdir_lock import WorkdirLock; "
       "held = WorkdirLock(sys.argv[1]).__enter__(); print('held', flush=True); sys.stdin.read()",
       workdir], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    start = time.time()
    with pytest.raises(WorkdirInUse, match=f"workdir {workdir} is in use by pid {holder.pid} on "
                       f"host {socket.gethostname()}"):
      train_and_evaluate(logged_every_step("lstm"), workdir)
    assert time.time() - start < 30  # refused at once: nothing was compiled or trained
    assert not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
  finally:
    holder.kill()  # SIGKILL: the kernel drops the lock with the process
    holder.wait()
  with WorkdirLock(workdir):
    with pytest.raises(WorkdirInUse, match=f"pid {os.getpid()}"):  # not re-entrant either
      WorkdirLock(workdir).__enter__()


class Killed(Exception):
  pass


def test_resume_cuts_metrics_and_tensorboard_back_to_the_checkpoint(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  original = metric_writer.MetricWriter.write

  def write_then_die(self, step, scalars):
    original(self, step, scalars)
    if step == 5 and "train_loss" in scalars:
      self.close()  # its events on disk (tensorboardX writes them from a thread)
      raise Killed  # as if killed after logging step 5: the last checkpoint is step 3

  monkeypatch.setattr(metric_writer.MetricWriter, "write", write_then_die)
  with pytest.raises(Killed):
    train_and_evaluate(logged_every_step("lstm"), workdir)
  monkeypatch.setattr(metric_writer.MetricWriter, "write", original)
  killed = {r["step"]: r["train_loss"] for r in rows(workdir) if "train_loss" in r}
  assert sorted(killed) == [1, 2, 3, 4, 5] and tensorboard_steps(workdir) == [1, 2, 3, 4, 5]
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 5, "train_lo')  # torn by the kill

  train_and_evaluate(logged_every_step("lstm"), workdir)
  records = rows(workdir)  # every line parses: no record glued to the torn one
  assert steps_of(records) == [1, 2, 3, 4, 5, 6]
  assert steps_of(records, "eval_loss") == [3, 6]
  resumed = {r["step"]: r["train_loss"] for r in records if "train_loss" in r}
  assert [resumed[s] for s in (4, 5)] == [killed[4], killed[5]]  # the same steps, redone exactly
  assert tensorboard_steps(workdir) == [1, 2, 3, 4, 5, 6]
  assert attnlab.load_run(workdir, "last").metrics["step"].is_monotonic_increasing


def test_metric_writer_cuts_every_jsonl_and_repairs_a_torn_line(tmp_path):
  lines = "".join(json.dumps({"step": s, "train_loss": 0.1 * s}) + "\n" for s in range(6))
  for name in ("metrics.jsonl", "grad_flow.jsonl"):
    (tmp_path / name).write_text(lines + '{"step": 6, "tra')
  writer = metric_writer.MetricWriter(str(tmp_path), 10, enabled=True, resume_step=3)
  writer.write(4, {"train_loss": 0.5})
  writer.close()
  assert steps_of(rows(tmp_path)) == [0, 1, 2, 3, 4]
  assert steps_of(rows(tmp_path, "grad_flow.jsonl")) == [0, 1, 2, 3]
  metric_writer.MetricWriter(str(tmp_path), 10, enabled=True, resume_step=None).close()
  assert rows(tmp_path) == []  # no checkpoint: the run starts afresh, so does its log


def test_a_first_progress_line_past_the_first_step_shows_a_rate(tmp_path, capsys):
  writer = metric_writer.MetricWriter(str(tmp_path), 10, enabled=True)
  time.sleep(0.05)
  writer.progress(10, 0, "done")  # logging only at the end: the first line is the last
  writer.close()
  value, unit = re.search(r"([0-9.]+)(step/s|s/step)", capsys.readouterr().err).groups()
  rate = float(value) if unit == "step/s" else 1 / float(value)  # tqdm's meter: either way round
  assert 0 < rate < 10 / 0.05 + 1


def test_a_workdir_without_checkpoint_does_not_claim_its_config(tmp_path):
  workdir = str(tmp_path / "run")
  first, second = logged_every_step("lstm"), logged_every_step("lstm")
  second.optimizer.learning_rate = 0.5
  run_dir.check_resumable_config(workdir, first)  # a run that then died before its checkpoint
  run_dir.check_resumable_config(workdir, second)  # so another config may start there
  assert run_dir.read_config(workdir).optimizer.learning_rate == 0.5
  os.makedirs(os.path.join(workdir, "checkpoints", "3"))
  with pytest.raises(ValueError, match=r"optimizer.learning_rate: 0.5 -> 0.001"):
    run_dir.check_resumable_config(workdir, first)
  nan = ml_collections.ConfigDict(dict(second.to_dict(), label_smoothing=float("nan")))
  run_dir.check_resumable_config(str(tmp_path / "nan"), nan)
  os.makedirs(tmp_path / "nan" / "checkpoints" / "3")
  run_dir.check_resumable_config(str(tmp_path / "nan"), nan)  # NaN == NaN for a saved config


def test_a_deleted_or_emptied_config_json_is_checked_against_the_checkpoints_copy(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  config = logged_every_step("lstm")
  train_and_evaluate(config, workdir)  # checkpoints 3 and 6, each with a copy of the config
  changed = ml_collections.ConfigDict(config.to_dict())
  changed.optimizer.learning_rate = 0.0123
  path = os.path.join(workdir, "config.json")
  for damage in ("deleted", "emptied"):
    if damage == "deleted":
      os.remove(path)
    else:
      open(path, "w").close()
    with pytest.raises(ValueError, match=rf"optimizer.learning_rate: "
                       rf"{config.optimizer.learning_rate} -> 0.0123"):
      run_dir.check_resumable_config(workdir, changed)  # would train on at another rate
    assert ("is missing or empty; comparing with the copy saved in checkpoint 6"
            in capsys.readouterr().err)
  run_dir.check_resumable_config(workdir, config)  # the run's own config continues it
  assert json.load(open(path)) == run_dir.config_to_json(config)  # and config.json is back


def test_two_tensorboard_writers_in_one_second_keep_each_others_events(tmp_path, monkeypatch):
  import tensorboardX.event_file_writer as event_file_writer
  frozen = time.time()  # tensorboardX names event files by the whole second
  monkeypatch.setattr(event_file_writer.time, "time", lambda: frozen)
  first = metric_writer.MetricWriter(str(tmp_path), 10, enabled=True)
  for step in (1, 2, 3):
    first.write(step, {"train_loss": 0.1 * step})
  first.close()  # as if killed after step 3, its checkpoint at step 2
  resumed = metric_writer.MetricWriter(str(tmp_path), 10, enabled=True, resume_step=2)
  for step in (3, 4):
    resumed.write(step, {"train_loss": 0.1 * step})
  resumed.close()
  assert len(glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))) == 2
  assert tensorboard_steps(str(tmp_path)) == [1, 2, 3, 4]


def test_a_cosine_schedule_keeps_its_length_when_num_train_steps_is_raised(tmp_path):
  workdir = str(tmp_path / "run")
  cosine = logged_every_step("lstm")
  cosine.optimizer.schedule = "warmup_cosine"
  run_dir.check_resumable_config(workdir, cosine)
  os.makedirs(os.path.join(workdir, "checkpoints", "3"))
  longer = ml_collections.ConfigDict(cosine.to_dict())
  longer.num_train_steps = 12
  with pytest.raises(ValueError, match=r"holds a warmup_cosine run whose schedule spans 6 steps; this "
                     r"config's spans 12 .*; train the longer schedule in a new --workdir"):
    run_dir.check_resumable_config(workdir, longer)
  assert run_dir.read_config(workdir).num_train_steps == 6  # config.json not rewritten
  longer.optimizer.schedule_steps = 6  # the cosine never ends before the run: still 12 steps
  with pytest.raises(ValueError, match=r"schedule spans 6 steps; this config's spans 12"):
    run_dir.check_resumable_config(workdir, longer)
  longer.num_train_steps, longer.optimizer.schedule_steps = 4, 6  # a lower cap, the same schedule
  run_dir.check_resumable_config(workdir, longer)
  assert run_dir.read_config(workdir).num_train_steps == 4
  constant = logged_every_step("lstm")  # a schedule without a length: more steps simply continue
  run_dir.check_resumable_config(str(tmp_path / "constant"), constant)
  os.makedirs(tmp_path / "constant" / "checkpoints" / "3")
  constant.num_train_steps = 12
  run_dir.check_resumable_config(str(tmp_path / "constant"), constant)


ARG = ("lstm,seq_len=12,steps=6,batch_size=8,eval_every=3,checkpoint_every=3,log_every=1,"
       "num_eval_batches=1,model.hidden_size=8,checkpoint.async_save=False")
# Stops at step 4 (not a checkpoint step) until the test has sent SIGINT, then goes on. The SIGINT
# handler the run installs is wrapped to leave a file once it has run, so the test waits for that
# file (not for a time) before letting the child go on.
CHILD = """import signal, sys
marker = sys.argv[1]
install = signal.signal
def signal_with_marker(signum, handler):
  if signum == signal.SIGINT and callable(handler):
    inner = handler
    def handler(*args):
      inner(*args)
      open(marker + ".sigint", "w").close()
  return install(signum, handler)
signal.signal = signal_with_marker
from attnlab.train import metric_writer
original = metric_writer.MetricWriter.write
def write(self, step, scalars):
  original(self, step, scalars)
  if step == 4 and "train_loss" in scalars:
    open(marker, "w").close()
    sys.stdin.readline()
metric_writer.MetricWriter.write = write
sys.argv = ["attnlab"] + sys.argv[2:]
from experiments.main import console_entry
console_entry()
"""


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_run_resumes(tmp_path):
  workdir, marker = str(tmp_path / "run"), str(tmp_path / "at_step_4")
  child = subprocess.Popen([sys.executable, "-c", CHILD, marker, f"--config=configs/adding.py:{ARG}",
                            f"--workdir={workdir}"], cwd=ROOT, env=ENV, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    while not os.path.exists(marker) and child.poll() is None and time.time() < deadline:
      time.sleep(0.1)
    assert os.path.exists(marker), child.communicate()[1]
    child.send_signal(signal.SIGINT)
    handled = marker + ".sigint"
    while not os.path.exists(handled) and child.poll() is None and time.time() < deadline:
      time.sleep(0.05)  # the handler runs while the child waits at step 4
    assert os.path.exists(handled), child.communicate()[1]
    _, err = child.communicate("\n", timeout=300)
  finally:
    child.kill()
  assert child.returncode == 130, err
  assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
  # the run's one line (a warning printed by a library may come after it)
  assert (f"Ctrl-C (SIGINT) at step 4: checkpoint saved in {workdir}; rerun the same command to "
          "resume") in err.strip().splitlines(), err
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "4"]
  train_and_evaluate(adding.get_config(ARG), workdir)
  run = attnlab.load_run(workdir, "last")
  assert run.step == 6 and steps_of(rows(workdir)) == [1, 2, 3, 4, 5, 6]
  assert jax.tree.leaves(run.params)  # restorable
