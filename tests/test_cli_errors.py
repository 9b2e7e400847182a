"""Every user error at the command line is one line and exit code 2, never a traceback.

The probes run as real processes (tests/cli_probe.py forks one per probe after importing attnlab
once); all of them fail during validation, before anything compiles.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

from attnlab.train.workdir_lock import WorkdirLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDING = "--config=configs/adding.py"
MAIN, SWEEP = "experiments.main", "experiments.sweep"

# name: (entry module, arguments, text the error line must contain); {tmp} is the probe folder
ERRORS = {
    "config_file": (MAIN, ["--config=configs/nosuch.py"],
                    "--config=configs/nosuch.py: config file 'configs/nosuch.py' not found; config "
                    "files in configs/: adding.py"),
    "field": (MAIN, ["--config.nosuch=1"],
              "--config.nosuch=1: config has no field 'nosuch'; valid fields of config: comparison"),
    "nested_field": (MAIN, [ADDING, "--config.task.seqlen=3"],
                     "config has no field 'task.seqlen'; valid fields of config.task: data_dir, name"),
    "config_argument": (MAIN, ["--config=configs/compare.py:huge"], "valid arguments: small, medium"),
    "seq_len": (MAIN, [ADDING, "--config.task.seq_len=-5"], "config.task: seq_len=-5 is invalid"),
    "batch_size": (MAIN, [ADDING, "--config.batch_size=0"],
                   "config.batch_size=0; must be a positive integer"),
    "nan_learning_rate": (MAIN, [ADDING, "--config.optimizer.learning_rate=nan"],
                          "config.optimizer.learning_rate=nan; must be a finite number > 0"),
    "value_type": (MAIN, [ADDING, "--config.batch_size=abc"], "flag --config.batch_size=abc: invalid"),
    "workdir_file": (MAIN, [ADDING, "--workdir={tmp}/a_file"],
                     "--workdir={tmp}/a_file is a file, not a directory"),
    "refused_workdir": (MAIN, [ADDING, "--workdir={tmp}/other_run"],
                        "holds a run with a different config (optimizer.learning_rate: 0.5 -> "),
    "corrupt_config": (MAIN, [ADDING, "--workdir={tmp}/corrupt"], "{tmp}/corrupt/config.json is damaged"),
    "workdir_in_use": (MAIN, [ADDING, "--workdir={tmp}/locked"],
                       "workdir {tmp}/locked is in use by pid {pid} on host {host}"),
    "malformed_sweep": (SWEEP, [ADDING, "--sweep=model=lstm"], "cannot parse sweep 'model=lstm'"),
    "missing_sweep_file": (SWEEP, [ADDING, "--sweep_file={tmp}/nosuch.txt"],
                           "--sweep_file={tmp}/nosuch.txt: file not found"),
    "repeated_axis": (SWEEP, [ADDING, "--sweep=seq_len=[20] task.seq_len=[30]"],
                      "sweep axis 'task.seq_len' repeats 'seq_len'"),
    "no_grid": (SWEEP, [ADDING], "give exactly one of --sweep"),
    "dry_run_bad_value": (SWEEP, [ADDING, "--sweep=seq_len=[20,-5]", "--dry_run", "--root={tmp}/dry"],
                          "sweep point seq_len=-5: config.task: seq_len=-5 is invalid"),
    "float_for_int_argument": (MAIN, ["--config=configs/adding.py:lstm,steps=1e3"],
                               "--config=configs/adding.py:lstm,steps=1e3: Could not override "
                               "field 'num_train_steps'"),
    "text_for_int_field": (MAIN, ["--config=configs/adding.py:lstm,model.hidden_size=abc"],
                           "Could not override field 'hidden_size' (reference). abc is of "
                           "original type"),
    "config_syntax_error": (MAIN, ["--config={tmp}/bad_config.py"],
                            "--config={tmp}/bad_config.py: {tmp}/bad_config.py line 1: invalid "
                            "syntax"),
    "nan_in_config_argument": (MAIN, ["--config=configs/adding.py:lstm,lr=nan"],
                               "config.optimizer.learning_rate=nan; must be a finite number > 0"),
}


def _workdirs(tmp):
  """The workdirs the probes need: a file, a run of another config, a damaged config.json."""
  (tmp / "a_file").write_text("")
  (tmp / "bad_config.py").write_text("def get_config(:\n  pass\n")
  for name, text in (("other_run", None), ("corrupt", "{not json")):
    os.makedirs(tmp / name / "checkpoints" / "3")  # a checkpoint: the workdir claims its config
    if text is None:
      sys.path.insert(0, ROOT)
      from attnlab.configs import adding
      from attnlab.train.run_dir import config_to_json
      config = adding.get_config()
      config.optimizer.learning_rate = 0.5
      text = json.dumps(config_to_json(config))
    (tmp / name / "config.json").write_text(text)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("cli")
  _workdirs(tmp)
  probes = [{"name": name, "module": module, "argv": [a.format(tmp=tmp) for a in argv],
             "env": {"ATTNLAB_COMPILATION_CACHE": "off"}}
            for name, (module, argv, _) in ERRORS.items()]
  probes.append({"name": "debug", "module": MAIN, "argv": ["--config.nosuch=1", "--debug"]})
  probes.append({"name": "debug_env", "module": SWEEP, "argv": [ADDING, "--sweep=model=lstm"],
                 "env": {"ATTNLAB_DEBUG": "1"}})
  probes.append({"name": "help", "console": True, "argv": ["--help"]})
  for what in ("models", "tasks"):
    probes.append({"name": f"list_{what}", "module": MAIN, "argv": [f"--list={what}"]})
  elsewhere = str(tmp / "elsewhere")
  os.makedirs(elsewhere)
  probes.append({"name": "elsewhere", "module": MAIN, "cwd": elsewhere,
                 "argv": ["--config=configs/adding.py:lstm,seq_len=30", "--list=config"]})
  probes.append({"name": "elsewhere_missing", "module": MAIN, "cwd": elsewhere,
                 "argv": ["--config=configs/nosuch.py", "--list=config"]})
  probes.append({"name": "list_config", "module": MAIN,
                 "argv": ["--config=configs/adding.py:lstm_chrono,seq_len=30", "--list=config"]})
  with open(tmp / "probes.json", "w") as f:
    json.dump(probes, f)
  with WorkdirLock(str(tmp / "locked")):  # held by this process while the probes run
    subprocess.run([sys.executable, "-m", "tests.cli_probe", str(tmp / "probes.json"),
                    str(tmp / "out.json")], cwd=ROOT, check=True, timeout=600)
  with open(tmp / "out.json") as f:
    return tmp, json.load(f)


@pytest.mark.parametrize("name", list(ERRORS))
def test_user_error_is_one_line(results, name):
  tmp, out = results
  want = ERRORS[name][2].format(tmp=tmp, pid=os.getpid(), host=socket.gethostname())
  r = out[name]
  assert r["code"] == 2, r["stderr"]
  assert "Traceback" not in r["stderr"], r["stderr"]
  lines = r["stderr"].strip().splitlines()
  assert len(lines) == 2 and lines[0].startswith("error: ") and want in lines[0], r["stderr"]
  assert "--debug" in lines[1]


def test_the_command_line_lists_models_tasks_and_a_configs_fields(results):
  _, out = results
  for name in ("list_models", "list_tasks", "list_config"):
    assert out[name]["code"] == 0 and "Traceback" not in out[name]["stderr"], out[name]["stderr"]
  models_text = out["list_models"]["stdout"]
  assert "\n  lstm: " in models_text and "hidden_size=128" in models_text
  assert "\n  transformer_window0: transformer with window=0" in models_text  # the config words
  assert "\n  adding: Adding problem" in out["list_tasks"]["stdout"]
  assert "variant='le2015'" in out["list_tasks"]["stdout"]
  lines = [line for line in out["list_config"]["stdout"].splitlines() if not line.startswith("#")]
  fields = {k.strip(): v.split("  # ")[0] for k, v in (line.split(" = ", 1) for line in lines)}
  assert fields["task.seq_len"] == "30"


def test_a_shipped_config_is_found_from_another_directory(results):
  """`configs/adding.py` typed outside the checkout (or with attnlab installed as a wheel) is the
  config attnlab ships, not a missing file; a missing one lists the shipped files."""
  _, out = results
  found, missing = out["elsewhere"], out["elsewhere_missing"]
  assert found["code"] == 0, found["stderr"]
  assert "task.seq_len" in found["stdout"] and "= 30" in found["stdout"]
  assert missing["code"] == 2 and "config files in " in missing["stderr"]
  assert "adding.py" in missing["stderr"]


def test_a_refused_dry_run_writes_nothing(results):
  assert not os.path.exists(results[0] / "dry")


@pytest.mark.parametrize("name", ["debug", "debug_env"])
def test_debug_shows_the_traceback(results, name):
  r = results[1][name]
  assert r["code"] != 0 and "Traceback (most recent call last)" in r["stderr"]


def test_help_describes_the_command_and_its_flags(results):
  r = results[1]["help"]
  assert r["code"] == 0
  assert r["stdout"].startswith("Train and evaluate one attnlab config")
  for flag in ("--config: config name or file[:argument]", "--workdir:", "--[no]debug:"):
    assert flag in r["stdout"]
