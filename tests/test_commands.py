"""One namespace and a command line that explains itself (issue 29).

A wheel installs everything under `attnlab` (configs/ as attnlab.configs, ...); `attnlab COMMAND` /
`python -m attnlab COMMAND` work from any directory; configs are named (adding:lstm) or given by
path; the sweep's dry run estimates each point's time from measured steps.
"""
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from attnlab import estimate, layout, sweep
from attnlab.configs import adding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("configs", "experiments", "launch", "benchmarks")
TINY = "steps=[40] seq_len=[10] model.hidden_size=[4] batch_size=[8] seed=[0,1]"


def _tracked_copy(dest):
  """The checkout's tracked files (as committed or edited, no build/ leftovers) copied to dest."""
  names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                         text=True).stdout.split("\0")
  for name in filter(None, names):
    if os.path.isfile(os.path.join(ROOT, name)):
      os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
      with open(os.path.join(ROOT, name), "rb") as src, open(os.path.join(dest, name), "wb") as out:
        out.write(src.read())
  return dest


def test_the_wheel_installs_everything_under_attnlab(tmp_path):
  src = _tracked_copy(str(tmp_path / "src"))
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(tmp_path / "dist"), src], check=True, capture_output=True, timeout=300)
  [wheel] = os.listdir(tmp_path / "dist")
  names = zipfile.ZipFile(tmp_path / "dist" / wheel).namelist()
  tops = {n.split("/", 1)[0] for n in names}
  assert tops == {"attnlab", "attnlab-0.1.0.dist-info"}, tops  # no configs/, experiments/, ...
  for name in ("configs/adding.py", "experiments/main.py", "launch/tpu.py", "launch/gpu.sh",
               "benchmarks/run.py", "__main__.py", "layout.py", "train/trainer.py"):
    assert f"attnlab/{name}" in names, name
  entry = zipfile.ZipFile(tmp_path / "dist" / wheel).read(
      "attnlab-0.1.0.dist-info/entry_points.txt").decode()
  assert "attnlab = attnlab.__main__:main" in entry


def test_configs_resolve_by_name_and_by_path_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  shipped = os.path.join(layout.configs_dir(), "adding.py")
  assert shipped == os.path.abspath(adding.__file__)
  assert layout.resolve_config("adding:lstm") == shipped + ":lstm"
  assert layout.resolve_config("configs/adding.py:lstm") == shipped + ":lstm"  # not here: shipped
  assert layout.resolve_config("nosuch:lstm") == "nosuch:lstm"  # the caller reports it
  assert layout.name_form(shipped + ":lstm,seq_len=30") == "adding:lstm,seq_len=30"
  assert layout.name_form("mine/adding.py:lstm") == "mine/adding.py:lstm"  # not a shipped file
  (tmp_path / "adding").write_text("")  # a file of one's own named like a config wins
  assert layout.resolve_config("adding:lstm") == "adding:lstm"
  assert set(layout.config_names()) >= {"adding", "compare", "copy", "default"}
  assert "common" not in layout.config_names()  # no get_config: not a config


def test_old_commands_are_printed_in_the_portable_form():
  old = ("python -m experiments.main --config=configs/adding.py:lstm,seq_len=10 --workdir=runs/x "
         "--config.num_train_steps=4")
  assert layout.portable_command(old) == ("python -m attnlab train --config=adding:lstm,seq_len=10 "
                                          "--workdir=runs/x --config.num_train_steps=4")
  mine = "python -m experiments.main --config=mine/configs/x.py:a --workdir=w"
  assert layout.portable_command(mine) == ("python -m attnlab train --config=mine/configs/x.py:a "
                                           "--workdir=w")


@pytest.mark.slow
def test_no_top_level_configs_package_is_imported():
  """Library code and configs import attnlab.configs, never a top-level `configs`."""
  out = subprocess.run([sys.executable, "-c", "import sys, attnlab.configs.compare, "
                        "attnlab.experiments.main; print(sorted({m.split('.')[0] for m in "
                        "sys.modules} & {'configs', 'experiments', 'launch', 'benchmarks'}))"],
                       cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
  assert out.stdout.strip() == "[]", out.stdout


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
  """`python -m attnlab ...` from an empty directory, each a forked process (tests/cli_probe.py)."""
  tmp = tmp_path_factory.mktemp("commands")
  empty = tmp / "empty"
  os.makedirs(empty)
  runs = {"help": [], "models": ["models"], "tasks": ["tasks"], "configs": ["config"],
          "config": ["config", "adding:lstm", "--config.task.seq_len=30"],
          "by_path": ["config", "configs/adding.py:lstm"],
          "unknown_name": ["train", "--config=nosuch:lstm"],
          "unknown_command": ["trian"],
          "sweep_dry_run": ["sweep", "--config=adding", f"--sweep={TINY}", "--dry_run",
                            f"--root={tmp}/sweep"]}
  todo = [{"name": k, "module": "attnlab", "argv": v, "cwd": str(empty),
           "env": {"ATTNLAB_COMPILATION_CACHE": "off"}} for k, v in runs.items()]
  with open(tmp / "probes.json", "w") as f:
    json.dump(todo, f)
  subprocess.run([sys.executable, "-m", "tests.cli_probe", str(tmp / "probes.json"),
                  str(tmp / "out.json")], cwd=ROOT, check=True, timeout=600)
  with open(tmp / "out.json") as f:
    return tmp, json.load(f)


def test_help_lists_the_commands(probes):
  r = probes[1]["help"]
  assert r["code"] == 0, r["stderr"]
  for command in ("train", "sweep", "models", "tasks", "config"):
    assert re.search(rf"^  {command} ", r["stdout"], re.M), command


def test_models_tasks_and_configs_are_listed_from_any_directory(probes):
  out = probes[1]
  for name in ("models", "tasks", "configs"):
    assert out[name]["code"] == 0 and "Traceback" not in out[name]["stderr"], out[name]["stderr"]
  assert "\n  lstm: " in out["models"]["stdout"]
  tasks = out["tasks"]["stdout"]
  assert "\n  adding: Adding problem" in tasks and "variant='le2015'" in tasks
  assert "solved when: eval_score >= 0.99" in tasks and "hochreiter1997" in tasks  # criteria
  assert "\n  adding: The adding problem" in out["configs"]["stdout"]
  assert "\n  common:" not in out["configs"]["stdout"]


def test_config_shows_every_field_its_default_and_choices(probes):
  out = probes[1]
  for name in ("config", "by_path"):
    assert out[name]["code"] == 0, out[name]["stderr"]
  lines = dict(line.split(" = ", 1) for line in out["config"]["stdout"].splitlines()
               if not line.startswith("#"))
  fields = {k.strip(): v for k, v in lines.items()}
  assert fields["task.seq_len"] == "30  # adding:lstm gives 100"  # the override and the default
  assert fields["model.name"].startswith("'lstm'  # choices: 'rnn', 'lstm', 'gru'")
  assert "choices: 'adam', 'adamw', 'sgd'" in fields["optimizer.name"]
  assert "choices: 'task', 'hochreiter1997'" in fields["criterion"]
  flat = {k.strip(): v.split("  # ")[0] for k, v in
          (line.split(" = ", 1) for line in out["by_path"]["stdout"].splitlines()
           if not line.startswith("#"))}
  assert set(flat) == set(fields)  # every field, by name or by path
  assert flat["task.seq_len"] == repr(adding.get_config("lstm").task.seq_len)


@pytest.mark.parametrize("name, want", [
    ("unknown_name", "error: --config=nosuch:lstm: no config named 'nosuch'; shipped configs: "
                     "adding, adding_h97, "),
    ("unknown_command", "error: unknown command 'trian'; commands: train, sweep, models, tasks"),
])
def test_a_wrong_name_is_one_line_naming_the_choices(probes, name, want):
  r = probes[1][name]
  assert r["code"] == 2 and "Traceback" not in r["stderr"], r["stderr"]
  assert r["stderr"].startswith(want) and len(r["stderr"].strip().splitlines()) <= 2, r["stderr"]


def test_the_sweep_dry_run_estimates_each_point_from_measured_steps(probes):
  tmp, out = probes
  r = out["sweep_dry_run"]
  assert r["code"] == 0, r["stderr"]
  assert "estimate: remaining steps x the median of 3 measured training steps per population on " \
         "this machine" in r["stdout"]
  header, _, *rows = [line.split(" | ") for line in r["stdout"].splitlines() if " | " in line]
  column = header.index("estimate")
  cells = [row[column] for row in rows]
  assert len(cells) == 2 and cells[0] == cells[1]  # one population (seeds 0, 1): one measurement
  assert re.fullmatch(r"\d+\.\ds|\d+s|\d+m \d\ds", cells[0]), cells
  assert not os.path.exists(tmp / "sweep")  # a dry run writes nothing


def test_estimates_are_remaining_steps_times_the_measured_step(tmp_path, monkeypatch):
  """One measurement per population; finished points need nothing, partial ones the rest."""
  calls = []
  monkeypatch.setattr(estimate, "measure_step",
                      lambda config, repeats: calls.append(config.model.name) or (9.0, 0.5))
  get_config = lambda arg: adding.get_config(arg + ",steps=40")  # noqa: E731
  axes = sweep.parse_grid("model=[lstm,rnn] seed=[0,1]")
  rows = sweep.run_sweep(get_config, axes, str(tmp_path), dry_run=True)
  rows[1]["status"] = "finished"
  os.makedirs(os.path.join(rows[2]["workdir"], "checkpoints", "10"))
  rows[2]["status"] = "partial"
  note = estimate.add_estimates(rows, axes, get_config)
  assert calls == ["lstm", "rnn"]  # two populations, each measured once
  assert [r["estimate"] for r in rows] == ["20s", "done", "15s", "20s"]  # 40 / 30 steps x 0.5 s
  assert "55s in all" in note and "9.0s per population" in note


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True])
def test_a_fresh_install_runs_from_another_directory(tmp_path, editable):
  """`pip install .` (or -e .) into a new virtualenv (its dependencies from this one, through a
  .pth file), then from an empty directory: attnlab models, attnlab config adding:lstm; the new
  site-packages holds attnlab and nothing else of ours at its top."""
  import site
  venv = tmp_path / "venv"
  base = sys._base_executable  # pylint: disable=protected-access
  subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
  [new_site] = [p for p in (venv / "lib").glob("python*/site-packages")]
  (new_site / "zz_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
  python = str(venv / "bin" / "python")
  src = ROOT if editable else _tracked_copy(str(tmp_path / "src"))
  subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                  *(["-e"] if editable else []), src], check=True, capture_output=True, timeout=300)
  installed = {p.name for p in new_site.iterdir()}
  assert not installed & set(FOLDERS), installed
  empty = tmp_path / "empty"
  os.makedirs(empty)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  for argv in (["models"], ["config", "adding:lstm"], ["config", "configs/adding.py:lstm"]):
    r = subprocess.run([str(venv / "bin" / "attnlab"), *argv], cwd=empty, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
  assert "model.name" in r.stdout and "'lstm'" in r.stdout
  where = subprocess.run([python, "-c", "import attnlab.configs as c; print(c.__file__)"],
                         cwd=empty, env=env, capture_output=True, text=True, check=True).stdout
  assert where.startswith(ROOT if editable else str(new_site)), where
