"""Launchers' dry runs print the exact commands; sweeps expand grids, skip finished points, resume."""
import csv
import os
import shlex
import subprocess

import pytest

from attnlab import sweep
from attnlab.train import train_and_evaluate
from attnlab.configs import adding
from launch import tpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POD = ["--name=attnlab-v4", "--zone=us-central2-b"]


def remote_command(cmd):
  """The --command=... of a gcloud ssh call, and the program inside its tmux session."""
  command = next(c for c in cmd if c.startswith("--command="))[len("--command="):]
  inner = shlex.split(command.split("tmux new-session -d -s attnlab ", 1)[1])[0]
  return command, shlex.split(inner.split(" 2>&1 | tee")[0].split(" && ", 1)[1])


def test_tpu_create_v4_32_spot():
  _, [cmd] = tpu.commands(["create", *POD, "--accelerator=v4-32", "--spot", "--project=p"])
  assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "attnlab-v4"]
  assert {"--zone=us-central2-b", "--accelerator-type=v4-32", "--spot", "--project=p"} <= set(cmd)


def test_tpu_run_on_all_workers_passes_config_and_overrides_through():
  args = ["run", *POD, "--config=configs/adding.py:transformer,seq_len=500",
          "--workdir=gs://bucket/runs/a b", "--", "--config.model.num_layers=4",
          "--config.task.variant=hochreiter1997"]
  _, [cmd] = tpu.commands(args)
  assert cmd[4:7] == ["ssh", "attnlab-v4", "--zone=us-central2-b"] and "--worker=all" in cmd
  command, program = remote_command(cmd)
  assert program == ["python3", "-m", "attnlab", "train",
                     "--config=configs/adding.py:transformer,seq_len=500",
                     "--workdir=gs://bucket/runs/a b", "--config.model.num_layers=4",
                     "--config.task.variant=hochreiter1997"]
  assert command.startswith("tmux kill-session -t attnlab")  # a relaunch replaces the old session


def test_tpu_setup_logs_delete():
  _, [cmd] = tpu.commands(["setup", *POD, "--repo=https://example.org/attnlab.git"])
  assert "--worker=all" in cmd and "git clone" in cmd[-1] and "pip install -q -e '.[tpu]'" in cmd[-1]
  _, cmds = tpu.commands(["setup", *POD, "--copy"])
  assert cmds[0] == ["git", "archive", "--format=tar.gz", f"--output={tpu.ARCHIVE}", "HEAD"]
  assert cmds[1][4:6] == ["scp", tpu.ARCHIVE] and "--worker=all" in cmds[1]
  assert f"tar -xzf ~/{tpu.ARCHIVE}" in cmds[2][-1] and "--worker=all" in cmds[2]
  _, [cmd] = tpu.commands(["logs", *POD, "--worker=3"])
  assert "--worker=3" in cmd and cmd[-1].startswith("--command=tail")
  _, [cmd] = tpu.commands(["delete", *POD])
  assert cmd[4:6] == ["delete", "attnlab-v4"] and "--quiet" in cmd


def test_tpu_sweep_is_one_job_per_point():
  _, [cmd] = tpu.commands(["sweep", *POD, "--config=configs/adding.py",
                           "--sweep=model=[lstm,transformer] task.seq_len=[100,500]",
                           "--root=gs://bucket/sweep/"])
  command = next(c for c in cmd if c.startswith("--command="))
  inner = shlex.split(command.split("tmux new-session -d -s attnlab ", 1)[1])[0]
  jobs = inner.split("( ", 1)[1].split(" ) 2>&1")[0].split("; ")
  assert len(jobs) == 4
  assert shlex.split(jobs[1])[4:] == ["--config=configs/adding.py:lstm,task.seq_len=500",
                                      "--workdir=gs://bucket/sweep/model=lstm,task.seq_len=500"]


def test_tpu_dry_run_prints_and_runs_nothing(capsys):
  assert tpu.main(["delete", *POD, "--dry-run"]) == 0
  assert capsys.readouterr().out.strip() == (
      "gcloud compute tpus tpu-vm delete attnlab-v4 --zone=us-central2-b --quiet")


def test_tpu_dry_run_after_the_separator_is_the_launchers_and_runs_nothing(capsys, monkeypatch):
  monkeypatch.setattr(tpu.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
  args = ["run", *POD, "--config=configs/adding.py:lstm", "--workdir=gs://b/r", "--",
          "--config.num_train_steps=20000", "--dry-run"]
  assert tpu.main(args) == 0
  _, program = remote_command(shlex.split(capsys.readouterr().out.strip()))
  assert program[-1] == "--config.num_train_steps=20000"  # --dry-run never reaches the workers


def _git(*args, cwd):
  subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_tpu_setup_in_a_local_clone_sends_a_clean_archive_of_head(tmp_path, monkeypatch, capsys):
  clone = tmp_path / "clone"
  clone.mkdir()
  _git("init", "-q", cwd=clone)  # a local clone with no remote
  (clone / "kept.py").write_text("x = 1\n")
  (clone / ".gitignore").write_text(".venv/\nruns/\n")
  _git("add", ".", cwd=clone)
  _git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c", cwd=clone)
  for ignored in (".venv/bin/python", "runs/a/metrics.jsonl"):
    (clone / ignored).parent.mkdir(parents=True)
    (clone / ignored).write_text("big")
  (clone / "kept.py").write_text("x = 2\n")  # an uncommitted change: not sent, and said so
  monkeypatch.chdir(clone)
  assert tpu.main(["setup", *POD, "--dry-run"]) == 0
  out = capsys.readouterr()
  pack, scp, unpack = [shlex.split(line) for line in out.out.strip().splitlines()]
  assert pack == ["git", "archive", "--format=tar.gz", f"--output={tpu.ARCHIVE}", "HEAD"]
  assert scp[4] == "scp" and "--worker=all" in scp and "uncommitted changes" in out.err
  subprocess.run(pack, check=True)  # what the dry run prints, run: HEAD's files only
  listed = subprocess.run(["tar", "-tzf", tpu.ARCHIVE], capture_output=True, text=True).stdout
  assert sorted(listed.split()) == [".gitignore", "kept.py"]
  content = subprocess.run(["tar", "-xzOf", tpu.ARCHIVE, "kept.py"], capture_output=True, text=True)
  assert content.stdout == "x = 1\n"


def _gcloud_stub(tmp_path, monkeypatch):
  """A `gcloud` on PATH that records its arguments (one line per call) and does nothing else."""
  bin_dir, log = tmp_path / "bin", tmp_path / "gcloud_calls"
  bin_dir.mkdir()
  (bin_dir / "gcloud").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
  (bin_dir / "gcloud").chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  return log


@pytest.mark.parametrize("after,message", [
    (["--config.num_train_step=5"], "config has no field 'num_train_step'"),
    (["--config.num_train_steps=many"], "--config.num_train_steps=many"),
    (["--config.model.name=lstmm"], "unknown model"),
    (["--zone=europe-west4-a"], "--zone=europe-west4-a after `--` is not a flag of `attnlab train`"),
])
def test_tpu_run_checks_the_flags_after_the_separator_before_any_gcloud(
    tmp_path, monkeypatch, capsys, after, message):
  log = _gcloud_stub(tmp_path, monkeypatch)
  args = ["run", *POD, "--config=adding:lstm", "--workdir=gs://b/r", "--", *after]
  assert tpu.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and len(err.splitlines()) == 1
  assert not log.exists()  # no gcloud command ran: the remote session is untouched
  assert tpu.main(["run", *POD, "--config=adding:lstm", "--workdir=gs://b/r", "--",
                   "--config.num_train_steps=20"]) == 0
  [call] = log.read_text().splitlines()  # a valid launch reaches gcloud, once
  assert call.startswith("compute tpus tpu-vm ssh attnlab-v4") and "attnlab train" in call


@pytest.mark.parametrize("accelerator,runtime", [("v4-32", "tpu-ubuntu2204-base"),
                                                 ("v5litepod-16", "v2-alpha-tpuv5-lite"),
                                                 ("v5p-8", "v2-alpha-tpuv5"),
                                                 ("v6e-8", "v2-alpha-tpuv6e")])
def test_tpu_create_picks_the_runtime_of_the_accelerator(accelerator, runtime):
  _, [cmd] = tpu.commands(["create", *POD, f"--accelerator={accelerator}"])
  assert f"--version={runtime}" in cmd
  _, [cmd] = tpu.commands(["create", *POD, f"--accelerator={accelerator}", "--runtime=custom"])
  assert "--version=custom" in cmd


def test_gpu_launcher_dry_run():
  out = subprocess.run([os.path.join(ROOT, "launch", "gpu.sh"), "--gpus=0,1", "--mem-fraction=0.8",
                        "--deterministic", "--dry-run", "--", "--config=configs/adding.py:lstm",
                        "--workdir=runs/x y"], capture_output=True, text=True, check=True).stdout
  cd, _, command = out.partition(" && ")
  assert shlex.split(cd) == ["cd", ROOT]  # a relative --workdir lands under the repository root
  words = shlex.split(command)
  assert words[:4] == ["env", "CUDA_VISIBLE_DEVICES=0,1", "XLA_PYTHON_CLIENT_MEM_FRACTION=0.8",
                       "XLA_FLAGS=--xla_gpu_deterministic_ops=true "]
  assert words[4:] == ["python3", "-m", "attnlab", "train",
                       "--config=configs/adding.py:lstm",
                       "--workdir=runs/x y"]


def test_grid_parsing_and_points():
  axes = sweep.parse_grid("model=[lstm,transformer]  task.seq_len=[100, 500]\nseed=[0]  # comment")
  assert axes == {"model": ["lstm", "transformer"], "task.seq_len": [100, 500], "seed": [0]}
  pts = sweep.points(axes)
  assert len(pts) == 4 and sweep.config_arg(pts[1]) == "lstm,task.seq_len=500,seed=0"
  with pytest.raises(ValueError, match="cannot parse sweep"):
    sweep.parse_grid("model=lstm")


def tiny_adding(arg):
  config = adding.get_config(arg)
  config.model.update({k: 8 for k in ("hidden_size", "d_model", "state_size") if k in config.model})
  if "num_heads" in config.model:
    config.model.update(num_heads=2, d_ff=16, num_layers=1)
  config.batch_size, config.num_eval_batches = 8, 1
  config.eval_every = config.checkpoint_every = config.log_every = 2
  config.checkpoint.async_save = False
  return config


@pytest.mark.slow
def test_local_sweep_skips_finished_and_resumes_unfinished(tmp_path):
  axes = sweep.parse_grid("model=[lstm,transformer] task.seq_len=[6,9] steps=[2]")
  calls = []

  def train(config, workdir):
    calls.append(workdir)
    return train_and_evaluate(config, workdir)

  rows = sweep.run_sweep(tiny_adding, axes, str(tmp_path), train_fn=train)
  assert len(calls) == 4 and all(r["status"] == "finished" for r in rows)
  with open(tmp_path / "results.csv") as f:
    table = list(csv.DictReader(f))
  assert [(r["model"], r["task.seq_len"]) for r in table] == [
      ("lstm", "6"), ("lstm", "9"), ("transformer", "6"), ("transformer", "9")]
  assert all(float(r["eval_loss"]) > 0 for r in table)
  calls.clear()
  sweep.run_sweep(tiny_adding, axes, str(tmp_path), train_fn=train)
  assert calls == []  # everything finished: nothing retrained
  summary = sweep.summary_table(rows)
  assert summary.splitlines()[0] == "model | task.seq_len | steps | status | eval_loss | eval_score"


def test_local_sweep_resumes_an_unfinished_point(tmp_path, monkeypatch):
  import attnlab
  from attnlab.train import metric_writer
  axes = sweep.parse_grid("model=[lstm] task.seq_len=[6] steps=[4]")
  [point] = sweep.points(axes)
  workdir = str(tmp_path / sweep.point_name(point))
  stopped = tiny_adding("lstm,task.seq_len=6,steps=2")  # as if the point had been stopped at 2
  train_and_evaluate(stopped, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged_before = f.read()
  assert [r["status"] for r in sweep.run_sweep(tiny_adding, axes, str(tmp_path), dry_run=True)] == \
      ["partial"]
  written = []  # the steps the sweep's run logs: a restarted run logs step 2 again
  original = metric_writer.MetricWriter.write
  monkeypatch.setattr(metric_writer.MetricWriter, "write",
                      lambda self, step, scalars: written.append(step) or original(self, step, scalars))
  [row] = sweep.run_sweep(tiny_adding, axes, str(tmp_path))
  assert row["status"] == "finished" and attnlab.load_run(workdir, "last").step == 4
  assert written and min(written) == 4, written  # continued from checkpoint 2, not restarted
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = f.read()
  assert logged.startswith(logged_before)  # the stopped run's rows kept as they were
  metrics = attnlab.load_run(workdir, "last").metrics
  assert metrics.dropna(subset=["train_loss"])["step"].tolist() == [2, 4]  # no step twice


@pytest.mark.parametrize("grid,message", [
    ("seq_len=[6,-5]", r"sweep point seq_len=-5: config.task: seq_len=-5 is invalid"),
    ("model=[lstm] nosuch=[1]", r"sweep point model=lstm,nosuch=1: config has no field 'nosuch'"),
    ("lr=[0.1,nan]", r"sweep point lr=nan: config.optimizer.learning_rate=nan; must be a finite"),
    ("lr=[fast]", r"sweep point lr=fast: Could not override field 'learning_rate'"),
])
def test_dry_run_validates_every_point_and_writes_nothing(tmp_path, grid, message):
  root = tmp_path / "sweep"
  rows = sweep.run_sweep(tiny_adding, sweep.parse_grid("seq_len=[6,9]"), str(root), dry_run=True)
  assert [r["status"] for r in rows] == ["new", "new"] and not root.exists()
  for dry_run in (True, False):  # a real sweep refuses it before training any point
    with pytest.raises(ValueError, match=message):
      sweep.run_sweep(tiny_adding, sweep.parse_grid(grid), str(root), dry_run=dry_run,
                      train_fn=lambda *_: pytest.fail("trained"))
    assert not root.exists()
