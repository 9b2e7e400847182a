"""Damaged and killed workdirs as a user meets them.

SIGKILL: a tiny run is killed at seeded random moments (inside checkpoint saves too, and once while
a second process tries the same workdir), resumed each time, and ends bit-identical to a run never
killed (tests/kill_probe.py forks every run from one process that imported attnlab once).

Damaged files: each fault injected into a copy of one finished run.

One tiny run (6 steps, checkpoints at 3 and 6) is trained in this process; every probe copies it,
damages one file (config.json, a checkpoint's meta, metrics or state, metrics.jsonl) or turns it
into a workdir of the layout saved before one manager kept the last and best checkpoints
(checkpoints/ + best/, with its faults: a damaged best/, best/ lost by a kill), and reruns the
same command through the command line (tests/cli_probe.py forks each probe from one process that
imported attnlab once). A fault the run cannot repair ends in exit code 2 and one line naming the
file, with nothing changed; one it can (a torn metrics line) is repaired, and an old workdir
resumes.
"""
import contextlib
import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import attnlab
from attnlab import errors
from attnlab.train import checkpoints, memory, optim, steps, train_and_evaluate
from attnlab.train import config as cfg_lib
from attnlab.configs import adding
from tests.test_workdir_safety import ARG, ENV, ROOT, rows, steps_of, tensorboard_steps

COMMAND = [f"--config=configs/adding.py:{ARG}"]


def _tear_metrics(w):
  shutil.rmtree(os.path.join(w, "checkpoints", "6"))  # killed after logging step 6, before saving it
  with open(os.path.join(w, "metrics.jsonl"), "a") as f:
    f.write('{"step": 6, "train_lo')


def as_old_layout(w):
  """The workdir as one manager per folder saved it: checkpoints/<step> without orbax's metrics,
  the best step (3: eval_score 0 at 3 and 6) also in best/."""
  for step in ("3", "6"):
    shutil.rmtree(os.path.join(w, "checkpoints", step, checkpoints.METRICS))
  shutil.copytree(os.path.join(w, "checkpoints", "3"), os.path.join(w, "best", "3"))


def _old_with(fault):
  return lambda w: (as_old_layout(w), fault(w))


def _damage_files(folder):
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      with open(path, "w") as f:
        f.write("{garbage")


# name: (the fault, exit code, text of the error line with {w} the workdir, or None)
FAULTS = {
    "corrupt_config": (lambda w: open(os.path.join(w, "config.json"), "w").write("{not json"), 2,
                       "{w}/config.json is damaged"),
    "corrupt_best_metrics": (
        lambda w: _damage_files(os.path.join(w, "checkpoints", "3", "metrics")), 74,
        "{w}/checkpoints/3/metrics/metrics cannot be read (JSONDecodeError"),
    "corrupt_old_best_meta": (
        _old_with(lambda w: _damage_files(os.path.join(w, "best", "3", "meta"))), 74,
        "{w}/best/3/meta cannot be read (JSONDecodeError"),
    "corrupt_latest_meta": (lambda w: _damage_files(os.path.join(w, "checkpoints", "6", "meta")), 74,
                            "checkpoint {w}/checkpoints/6 cannot be restored (JSONDecodeError"),
    "corrupt_state": (lambda w: _damage_files(os.path.join(w, "checkpoints", "6", "state")), 74,
                      "checkpoint {w}/checkpoints/6 cannot be restored"),
    "old_best_lost": (_old_with(lambda w: shutil.rmtree(os.path.join(w, "best"))), 0, None),
    "torn_metrics": (_tear_metrics, 0, None),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """The finished run every probe copies."""
  workdir = str(tmp_path_factory.mktemp("fault") / "base")
  train_and_evaluate(adding.get_config(ARG), workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  assert checkpoints.best_step(workdir, "eval_score", "max") == 3  # eval_score 0 at 3 and 6: 3 stays
  assert not os.path.exists(os.path.join(workdir, checkpoints.BEST))  # one manager, one folder
  return workdir


@pytest.fixture(scope="module")
def probes(base, tmp_path_factory):
  """{fault: (workdir, {"code", "stdout", "stderr"}, files before the rerun)}."""
  tmp = tmp_path_factory.mktemp("probes")
  workdirs, before, todo = {}, {}, []
  for name, (inject, _, _) in FAULTS.items():
    workdirs[name] = str(tmp / name)
    shutil.copytree(base, workdirs[name])
    inject(workdirs[name])
    before[name] = _tree(workdirs[name])
    todo.append({"name": name, "module": "experiments.main",
                 "argv": COMMAND + [f"--workdir={workdirs[name]}"],
                 "env": {"ATTNLAB_COMPILATION_CACHE": "off"}})
  out = _probe(tmp, todo)
  return {name: (workdirs[name], out[name], before[name]) for name in FAULTS}


def _tree(workdir) -> dict:
  """{relative path: bytes} of every file but the lock (what a refused rerun must not change)."""
  found = {}
  for folder, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(folder, name)
      if name != ".lock":
        with open(path, "rb") as f:
          found[os.path.relpath(path, workdir)] = f.read()
  return found


@pytest.mark.slow  # the probes fixture: ~25 s of forked reruns
@pytest.mark.parametrize("name", [n for n, f in FAULTS.items() if f[1]])
def test_an_unrepairable_fault_is_one_line_naming_the_file_and_changes_nothing(probes, name):
  workdir, r, before = probes[name]
  lines = r["stderr"].strip().splitlines()
  assert r["code"] == FAULTS[name][1] and "Traceback" not in r["stderr"], r["stderr"]
  assert len(lines) == 2 and FAULTS[name][2].format(w=workdir) in lines[0], r["stderr"]
  assert _tree(workdir) == before


@pytest.mark.slow  # the probes fixture: ~25 s of forked reruns
def test_an_old_workdir_that_lost_best_reruns_and_loads_its_best_from_checkpoints(probes):
  """checkpoints/ + best/, killed after checkpoints/3 before best/3: the best is read from the
  kept checkpoints' meta; the rerun of the finished run writes nothing."""
  workdir, r, before = probes["old_best_lost"]
  assert r["code"] == 0, r["stderr"]
  assert "finished already" in r["stderr"]
  saved = lambda tree: {k: v for k, v in tree.items() if k.startswith("checkpoints")}
  assert saved(_tree(workdir)) == saved(before)  # nothing rotated away or rewritten
  assert not os.path.exists(os.path.join(workdir, checkpoints.BEST))
  run = attnlab.load_run(workdir)
  assert run.step == 3 and run.checkpoint_metrics["eval_score"] == 0.0


@pytest.mark.slow  # the probes fixture: ~25 s of forked reruns
def test_a_torn_metrics_line_is_repaired_and_the_run_redone_from_its_checkpoint(probes, base):
  workdir, r, _ = probes["torn_metrics"]
  assert r["code"] == 0, r["stderr"]
  records = rows(workdir)  # every line parses
  assert steps_of(records) == [1, 2, 3, 4, 5, 6] and steps_of(records, "eval_loss") == [3, 6]
  losses = lambda records: {r["step"]: r["train_loss"] for r in records if "train_loss" in r}
  assert losses(records) == losses(rows(base))  # steps 4-6 redone exactly
  jax.tree.map(np.testing.assert_array_equal, attnlab.load_run(workdir, "last").params,
               attnlab.load_run(base, "last").params)


def test_load_run_falls_back_to_the_last_checkpoint_and_gives_metrics_without_one(base, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  for step in ("3", "6"):  # evaluations all non-finite (on_nonfinite='record'): nothing ranked
    shutil.rmtree(os.path.join(workdir, "checkpoints", step, checkpoints.METRICS))
    path = os.path.join(workdir, "checkpoints", step, "meta", "metadata")
    with open(path) as f:
      meta = json.load(f)
    with open(path, "w") as f:
      json.dump(dict(meta, eval_score=float("nan")), f)
  with pytest.warns(UserWarning, match="no best checkpoint .* loaded the last one, step 6"):
    assert attnlab.load_run(workdir).step == 6
  for folder in ("checkpoints", "best"):
    shutil.rmtree(os.path.join(workdir, folder), ignore_errors=True)
  with pytest.warns(UserWarning, match="has no checkpoint yet"):
    run = attnlab.load_run(workdir)
  assert run.params is None and run.step is None
  assert list(run.metrics.dropna(subset=["train_loss"]).step) == [1, 2, 3, 4, 5, 6]
  with pytest.raises(FileNotFoundError, match=f"run {workdir} has no checkpoint yet"):
    run.variables


def test_load_run_passes_over_a_damaged_newest_checkpoint_and_says_so(base, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(base, workdir)
  _damage_files(os.path.join(workdir, "checkpoints", "6", "state"))
  with pytest.warns(UserWarning, match=f"checkpoint {workdir}/checkpoints/6 cannot be restored: "
                    "loaded step 3, the newest intact one"):
    run = attnlab.load_run(workdir, "last")
  assert run.step == 3
  jax.tree.map(np.testing.assert_array_equal, run.params, attnlab.load_run(base, 3).params)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]  # nothing changed
  with pytest.raises(checkpoints.CorruptCheckpointError, match="checkpoints/6 cannot be restored"):
    attnlab.load_run(workdir, 6)  # a step asked for by number is that step or an error


def old_workdir(workdir, steps: dict, best: dict, keep=None):
  """A workdir as two managers saved it: checkpoints/ (no orbax metrics) and best/; steps and
  best: {step: eval_score}. Returns the saved state."""
  state = {"w": np.arange(3.0, dtype=np.float32)}
  for folder, saved in ((checkpoints.LAST, steps), (checkpoints.BEST, best)):
    manager = checkpoints._manager(os.path.join(workdir, folder), keep, False)
    for step, score in saved.items():
      manager.save(step, args=checkpoints._save_args(
          state, {"i": step}, {"step": step, "eval_score": score}))
    manager.close()
  return state


def test_an_old_stale_best_is_passed_over_for_the_better_kept_checkpoint(tmp_path):
  """Killed between checkpoints/6 and best/6 (two managers): reading gives 6, and a resumed run
  keeps 6 (orbax cannot rank it: no metrics) while best/ is never written."""
  workdir = str(tmp_path / "run")
  state = old_workdir(workdir, {3: 0.5, 6: 0.9}, {3: 0.5})
  assert checkpoints.best_step(workdir, "eval_score", "max") == 6
  assert checkpoints.best_step(workdir, "eval_score", "min") == 3
  assert checkpoints.restore_numpy(workdir, "best")[1:] == ({"step": 6, "eval_score": 0.9}, 6)
  assert os.listdir(os.path.join(workdir, "best")) == ["3"]  # reading changed nothing
  ck = checkpoints.Checkpointer(workdir, keep=2, async_save=False)
  for step, score in ((9, 0.2), (12, None), (15, 0.3)):
    ck.save(step, state, {"i": step}, score and {"eval_score": score})
  ck.close()
  assert sorted(map(int, os.listdir(os.path.join(workdir, "checkpoints")))) == [6, 12, 15]
  assert os.listdir(os.path.join(workdir, "best")) == ["3"]
  assert checkpoints.best_step(workdir, "eval_score", "max") == 6


def test_the_best_is_kept_by_orbax_and_never_a_nonfinite_one(tmp_path):
  """One manager: the last `keep` steps and the best by its stored metric (a tie: the earlier
  step; NaN and inf never best, steps without an evaluation dropped when no longer latest)."""
  workdir = str(tmp_path / "run")
  state = {"w": np.arange(3.0, dtype=np.float32)}
  for mode in ("max", "min"):
    ck = checkpoints.Checkpointer(os.path.join(workdir, mode), keep=2, best_mode=mode)
    scores = {2: float("nan"), 4: 0.9, 6: -float("inf"), 8: 0.5, 10: 0.9, 12: None, 14: 0.6}
    for step, score in scores.items():  # async: each save's deletions wait for its commit
      ck.save(step, state, {"i": step}, None if score is None else {"eval_score": score})
    ck.close()
    kept = sorted(map(int, os.listdir(os.path.join(workdir, mode, "checkpoints"))))
    best = 4 if mode == "max" else 8
    assert kept == sorted({12, 14, best}), (mode, kept)
    assert checkpoints.best_step(os.path.join(workdir, mode), "eval_score", mode) == best


def test_fault_messages_name_the_resource_and_the_file():
  enospc = OSError(errno.ENOSPC, "No space left on device", "/w/metrics.jsonl")
  assert errors.fault_message(enospc).startswith(
      "no space left on the device writing /w/metrics.jsonl. Nothing saved before it is lost")
  tensorstore = ValueError('OUT_OF_RANGE: Error writing "params/0" in OCDBT database at local file '
                           '"/w/checkpoints/20.orbax-checkpoint-tmp/state/ocdbt.process_0/": Failed '
                           "to write 745583 bytes to file 8: File too large [os_error_code='27']")
  assert errors.fault_message(tensorstore).startswith(
      "the file-size limit (ulimit -f) was reached writing /w/checkpoints/20.")
  try:  # found through the chain of causes, as orbax re-raises it
    raise RuntimeError("save failed") from OSError(errno.EROFS, "Read-only file system")
  except RuntimeError as e:
    assert errors.fault_message(e).startswith("the file system is read-only.")
  def write_text(path):  # etils' Path.write_text in orbax's threads: ENOSPC on close, no filename
    raise OSError(errno.ENOSPC, "No space left on device")
  try:
    write_text(pathlib.Path("/w/checkpoints/3.orbax-checkpoint-tmp-7/meta/metadata"))
  except OSError as e:
    assert errors.fault_message(e).startswith(
        "no space left on the device writing /w/checkpoints/3.")
  assert errors.fault_message(MemoryError()).startswith("out of memory")
  assert errors.fault_message(ValueError("config.batch_size=0; must be positive")) is None
  assert errors.fault_message(OSError(errno.ENOENT, "No such file")) is None


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_and_the_run_resumes_exactly(base, tmp_path):
  workdir = str(tmp_path / "run")
  probe = {"module": "experiments.main", "argv": COMMAND + [f"--workdir={workdir}"],
           "env": {"ATTNLAB_COMPILATION_CACHE": "off"}}
  out = _probe(tmp_path, [dict(probe, name="limited", file_size_limit=4096),
                          dict(probe, name="rerun")])
  _assert_one_line(out["limited"], errors.FAULT_EXIT_CODE,
                   f"the file-size limit (ulimit -f) was reached writing {workdir}/")
  assert out["rerun"]["code"] == 0, out["rerun"]["stderr"]
  assert _by_key(rows(workdir)) == _by_key(rows(base))  # the same run as one never stopped


def test_an_orphan_older_best_of_an_old_workdir_is_never_the_best(tmp_path):
  """Two managers, killed after best/30 was committed but before best/10 was deleted: 30 is the
  best, read and after a reopen (best/ is read, never written)."""
  workdir = str(tmp_path / "run")
  old_workdir(workdir, {30: 0.9}, {10: 0.5, 30: 0.9})
  assert sorted(os.listdir(os.path.join(workdir, "best"))) == ["10", "30"]
  checkpoints.Checkpointer(workdir, keep=3, async_save=False).close()
  assert sorted(os.listdir(os.path.join(workdir, "best"))) == ["10", "30"]
  assert checkpoints.restore_numpy(workdir, "best")[1:] == ({"step": 30, "eval_score": 0.9}, 30)


def test_unreadable_best_meta_is_never_replaced(tmp_path):
  """Checkpointer alone on an old workdir: a damaged best/ stops it; moved aside, the best is
  chosen among checkpoints/ and kept (orbax cannot rank it) while worse steps come."""
  workdir = str(tmp_path / "run")
  state = old_workdir(workdir, {3: 0.9}, {3: 0.9})
  _damage_files(os.path.join(workdir, "best", "3", "meta"))
  with pytest.raises(checkpoints.CorruptCheckpointError, match=f"{workdir}/best/3/meta cannot be "
                     f"read .* move {workdir}/best aside"):
    checkpoints.Checkpointer(workdir, keep=3, async_save=False)
  assert os.listdir(os.path.join(workdir, "best")) == ["3"]
  shutil.move(os.path.join(workdir, "best"), str(tmp_path / "best_aside"))
  ck = checkpoints.Checkpointer(workdir, keep=1, async_save=False)
  for step in (6, 9):
    ck.save(step, state, {"i": step}, {"eval_score": 0.5})  # worse than the real best
  ck.close()
  assert sorted(map(int, os.listdir(os.path.join(workdir, "checkpoints")))) == [3, 6, 9]
  assert checkpoints.restore_numpy(workdir, "best")[1]["eval_score"] == 0.9


KILL_STEPS, KILL_EVERY = 10, 2
# Asynchronous saves (the default), a best/ that moves (eval_loss falls at most evaluations).
KILL_ARG = (f"lstm,seq_len=12,steps={KILL_STEPS},batch_size=8,eval_every={KILL_EVERY},"
            f"checkpoint_every={KILL_EVERY},log_every=1,num_eval_batches=1,model.hidden_size=8,"
            "checkpoint.best_metric=eval_loss,checkpoint.best_mode=min")
TIMINGS = ("steps_per_sec", "checkpoint_blocked_s")


def kill_plan(seed: int) -> list:
  """One kill of each kind of tests/kill_probe.py, at distinct steps drawn with `seed`, in step
  order: each resumed run starts at or before the next kill's step, so every kill is reached."""
  rng = np.random.default_rng(seed)
  saves = rng.choice(np.arange(KILL_EVERY, KILL_STEPS + 1, KILL_EVERY), 3, replace=False)
  others = rng.choice(sorted(set(range(1, KILL_STEPS + 1)) - set(saves)), 2, replace=False)
  kinds = zip(("save_begun", "save_written", "saved", "torn", "hold"), [*saves, *others])
  return sorted(({"at": at, "step": int(step)} for at, step in kinds), key=lambda k: k["step"])


def _by_key(records) -> dict:
  """{metric: [(step, value)]} in file order, timings without their values."""
  out = {}
  for r in records:
    for key, value in r.items():
      if key != "step":
        out.setdefault(key, []).append((r["step"], None if key in TIMINGS else value))
  return out


@pytest.mark.slow  # ~30 s: seven forked runs
def test_sigkill_at_random_moments_resumes_bit_identical(tmp_path):
  """Seven runs of 10 steps in forked processes, compiled once (a compilation cache in tmp_path):
  about 35 s on 2 quiet cores."""
  plan = kill_plan(seed=12)
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  runs = [{"name": "straight", "workdir": straight}]
  runs += [{"name": f"kill_{i}", "workdir": killed, "kill": kill} for i, kill in enumerate(plan)]
  runs += [{"name": "resumed", "workdir": killed}]
  with open(tmp_path / "plan.json", "w") as f:
    json.dump({"argv": [f"--config=configs/adding.py:{KILL_ARG}"], "runs": runs,
               "env": {"ATTNLAB_COMPILATION_CACHE": str(tmp_path / "cache")}}, f)
  subprocess.run([sys.executable, "-m", "tests.kill_probe", str(tmp_path / "plan.json"),
                  str(tmp_path / "out.json")], cwd=ROOT, check=True, timeout=600)
  with open(tmp_path / "out.json") as f:
    out = json.load(f)

  for name in ("straight", "resumed"):
    assert out[name]["code"] == 0, out[name]["stderr"]
  for i, kill in enumerate(plan):
    r, step = out[f"kill_{i}"], kill["step"]
    assert r["code"] == -9, (kill, r["stderr"])  # killed at its moment, not finished
    saved = r["saved"].get("checkpoints", [])
    if kill["at"] in ("save_begun", "save_written"):  # inside the save: not committed
      assert str(step) not in saved and any(n.startswith(f"{step}.") and "tmp" in n for n in saved), \
          (kill, saved)
    elif kill["at"] == "saved":
      assert str(step) in saved, (kill, saved)
    if kill["at"] == "hold":  # the same command while the run trains: refused, naming the holder
      second = r["second"]
      lines = second["stderr"].strip().splitlines()
      assert second["code"] == 2 and "Traceback" not in second["stderr"], second["stderr"]
      assert f"workdir {killed} is in use by pid {r['pid']} on host " in lines[0], lines

  for which in ("last", "best"):
    want, got = attnlab.load_run(straight, which), attnlab.load_run(killed, which)
    assert got.step == want.step, which
    jax.tree.map(np.testing.assert_array_equal, got.params, want.params)
  records = rows(killed)  # every line parses: the torn one was repaired
  for key, points in _by_key(records).items():
    steps = [s for s, _ in points]
    assert all(a < b for a, b in zip(steps, steps[1:])), (key, steps)  # no duplicates, in order
  assert _by_key(records) == _by_key(rows(straight))  # the same steps, the same values
  assert tensorboard_steps(killed) == tensorboard_steps(straight) == list(range(1, KILL_STEPS + 1))


def _probe(tmp_path, probes: list) -> dict:
  """tests/cli_probe.py's results of `probes`, run in order."""
  with open(tmp_path / "probes.json", "w") as f:
    json.dump(probes, f)
  subprocess.run([sys.executable, "-m", "tests.cli_probe", str(tmp_path / "probes.json"),
                  str(tmp_path / "out.json")], cwd=ROOT, check=True, timeout=600)
  with open(tmp_path / "out.json") as f:
    return json.load(f)


def _assert_one_line(r: dict, code: int, start: str):
  """Exit `code`, no traceback, the error line starting with `start` and the --debug hint."""
  lines = [l for l in r["stderr"].strip().splitlines()  # progress and notes: 'lstm seed 0: ...'
           if not re.match(r"\w+ seed \d+[^:]*: ", l)]
  assert r["code"] == code and "Traceback" not in r["stderr"], r["stderr"]
  assert len(lines) == 2 and lines[0].startswith("error: " + start), r["stderr"]


@contextlib.contextmanager
def _tmpfs(path: str, size: str):
  """A tmpfs of `size` mounted at `path` (skips the test where mounting is not permitted)."""
  os.makedirs(path)
  if shutil.which("mount") is None:
    pytest.skip("no mount command: the disk-full and read-only tests mount a tmpfs")
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                           capture_output=True, text=True)
  if mounted.returncode:
    pytest.skip("mounting a tmpfs is not permitted here (it needs root or CAP_SYS_ADMIN): "
                f"{mounted.stderr.strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", path], check=False)


def _probe_of(workdir, name, arg=ARG, **fields) -> dict:
  return dict(name=name, module="experiments.main",
              argv=[f"--config=configs/adding.py:{arg}", f"--workdir={workdir}"],
              env={"ATTNLAB_COMPILATION_CACHE": "off"}, **fields)


@pytest.fixture(scope="module")
def disks(base, tmp_path_factory):
  """{"full" | "read_only": workdir} and the probes' results, in one forked process.

  full: the tiny run into a 200 kB tmpfs, then rerun after a remount to 64 MB. read_only: the
  finished run of 6 steps continued to 9 on a tmpfs remounted read-only, then read-write."""
  tmp = tmp_path_factory.mktemp("disks")
  longer = ARG.replace("steps=6", "steps=9")
  with contextlib.ExitStack() as mounts:
    full = mounts.enter_context(_tmpfs(str(tmp / "full"), "200k"))
    read_only = mounts.enter_context(_tmpfs(str(tmp / "read_only"), "64m"))
    workdirs = {"full": os.path.join(full, "run"), "read_only": os.path.join(read_only, "run")}
    shutil.copytree(base, workdirs["read_only"])
    out = _probe(tmp, [
        _probe_of(workdirs["full"], "full"),
        _probe_of(workdirs["full"], "full_rerun", before=["mount", "-o", "remount,size=64m", full]),
        _probe_of(workdirs["read_only"], "read_only", longer,
                  before=["mount", "-o", "remount,ro", read_only]),
        _probe_of(workdirs["read_only"], "read_only_rerun", longer,
                  before=["mount", "-o", "remount,rw", read_only])])
    yield workdirs, out


@pytest.mark.slow  # the disks fixture: ~17 s of runs on tiny tmpfs mounts
def test_a_full_disk_is_one_line_and_the_run_resumes_exactly(disks, base):
  workdirs, out = disks
  workdir = workdirs["full"]
  _assert_one_line(out["full"], errors.FAULT_EXIT_CODE,
                   f"no space left on the device writing {workdir}/")
  assert out["full_rerun"]["code"] == 0, out["full_rerun"]["stderr"]
  # The same run as one never stopped; a save the full disk stopped logged no timing.
  without_timing = lambda records: {k: v for k, v in _by_key(records).items()
                                    if k != "checkpoint_blocked_s"}
  assert without_timing(rows(workdir)) == without_timing(rows(base))
  assert steps_of(rows(workdir)) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow  # the disks fixture
def test_a_read_only_file_system_is_one_line_and_the_run_resumes(disks, base):
  workdirs, out = disks
  workdir = workdirs["read_only"]
  _assert_one_line(out["read_only"], errors.FAULT_EXIT_CODE,
                   f"the file system is read-only writing {workdir}/")
  assert out["read_only_rerun"]["code"] == 0, out["read_only_rerun"]["stderr"]
  records = rows(workdir)
  assert steps_of(records) == list(range(1, 10))
  assert [r for r in records if r["step"] <= 6] == rows(base)  # kept as it was


# Stops where the state is first compiled (start-up: no step trained, nothing saved) until the
# test has sent its signal.
STARTUP_CHILD = """import sys
marker = sys.argv[1]
from attnlab.train import steps
original = steps.jit_init
def jit_init(*args, **kwargs):
  open(marker, "w").close()
  sys.stdin.readline()
  return original(*args, **kwargs)
steps.jit_init = jit_init
sys.argv = ["attnlab"] + sys.argv[2:]
from experiments.main import console_entry
console_entry()
"""


def _signal_at_startup(workdir, marker, signum) -> tuple:
  """(exit code, stderr) of a run sent `signum` while it starts."""
  child = subprocess.Popen([sys.executable, "-c", STARTUP_CHILD, marker,
                            f"--config=configs/adding.py:{ARG}", f"--workdir={workdir}"], cwd=ROOT,
                           env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 300
    while not os.path.exists(marker) and child.poll() is None and time.time() < deadline:
      time.sleep(0.1)
    assert os.path.exists(marker), child.communicate()[1]
    child.send_signal(signum)
    _, err = child.communicate("\n", timeout=300)
  finally:
    child.kill()
  return child.returncode, err


@pytest.mark.slow  # ~10 s: two runs signalled while they start, then resumed
def test_a_signal_at_startup_is_one_line_and_the_run_starts_over(base, tmp_path):
  workdir = str(tmp_path / "run")
  for signum, code, line in ((signal.SIGTERM, 143, "terminated (SIGTERM) before a checkpoint"),
                             (signal.SIGINT, 130, "interrupted (Ctrl-C) before a checkpoint")):
    returncode, err = _signal_at_startup(workdir, str(tmp_path / f"marker_{signum}"), signum)
    lines = [l for l in err.strip().splitlines() if "Warning" not in l and l.strip()]
    assert returncode == code and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(line), err
  assert not os.path.exists(os.path.join(workdir, "checkpoints", "3"))
  train_and_evaluate(adding.get_config(ARG), workdir)
  assert _by_key(rows(workdir)) == _by_key(rows(base))


# Small configs whose step a compiled XLA program measures: a recurrent scan's saved states, plain
# attention's (T, T) weights (mean pooling: every row), and a last-step readout's last block at one
# row.
_PLAIN = ("transformer,seq_len=128,batch_size=8,model.d_model=32,model.num_heads=2,model.d_ff=64,"
          "model.attention_impl=plain")
MEMORY_ARGS = ("lstm,seq_len=100,batch_size=16,model.hidden_size=32",
               pytest.param(_PLAIN + ",model.num_layers=1,model.pooling=mean",
                            marks=pytest.mark.slow),
               _PLAIN + ",model.num_layers=1")


@pytest.mark.parametrize("arg", MEMORY_ARGS)
def test_the_memory_estimate_is_within_3x_of_the_compiled_step(arg):
  config = adding.get_config(arg + ",prefetch_batches=0,num_eval_batches=1")
  spec, model_config = cfg_lib.validate(config, 1)
  model = attnlab.models.build(model_config)
  tx, schedule = optim.make_optimizer(config.optimizer, config.num_train_steps)
  batch = {"inputs": np.zeros((config.batch_size, spec.seq_len, spec.input_dim), np.float32),
           "targets": np.zeros((config.batch_size,), np.float32),
           "mask": np.ones((config.batch_size,), np.float32),
           "lengths": np.full((config.batch_size,), spec.seq_len, np.int32)}
  state = jax.eval_shape(lambda rng: steps.create_state(model, tx, spec, rng, batch),
                         jax.random.PRNGKey(0))
  train_step = jax.jit(steps.make_train_step(model, tx, spec, schedule, seed=0), donate_argnums=0)
  analysis = train_step.lower(state, batch).compile().memory_analysis()
  if analysis is None:
    pytest.skip(f"the {jax.default_backend()} backend reports no memory_analysis()")
  peak = (analysis.temp_size_in_bytes + analysis.argument_size_in_bytes
          + analysis.output_size_in_bytes - analysis.alias_size_in_bytes)
  estimate = memory.estimate(config, spec, model_config).device_bytes
  assert peak / 3 < estimate < 3 * peak, (memory.size(estimate), memory.size(peak))


def test_a_step_that_cannot_fit_is_refused_at_once_in_one_line(tmp_path):
  workdirs = {name: str(tmp_path / name) for name in ("lstm", "plain")}
  out = _probe(tmp_path, [
      _probe_of(workdirs["lstm"], "lstm", "lstm,seq_len=100000000"),
      _probe_of(workdirs["plain"], "plain",
                "transformer,seq_len=100000,model.attention_impl=plain")])
  have = memory.size(memory.host_memory()[0]) if jax.default_backend() == "cpu" else ""
  for name, workdir in workdirs.items():
    r = out[name]
    _assert_one_line(r, errors.FAULT_EXIT_CODE, "a training step of this config needs about ")
    assert have in r["stderr"] and r["seconds"] < 10, (r["seconds"], r["stderr"])
    assert not os.path.exists(workdir)  # refused before anything was written
  assert "mostly the attention weights" in out["plain"]["stderr"]
  assert "model.attention_impl='chunked'" in out["plain"]["stderr"]
  config = adding.get_config("lstm,seq_len=100000000,check_memory=False")
  assert cfg_lib.validate(config, 1)[0].seq_len == 100000000  # the switch skips the estimate
