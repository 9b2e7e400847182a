"""What a run prints: labelled progress lines, a line naming the checkpoint a run resumed from, and
none of orbax's expected warnings (a run and a notebook's load_run open checkpoints read-only)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = """import sys
import attnlab
from attnlab.train import train_and_evaluate
from tests.train_worker import tiny_config
config = tiny_config()
config.num_train_steps, config.log_every = 4, 2
train_and_evaluate(config, sys.argv[1])
attnlab.load_run(sys.argv[1], "best")
config.num_train_steps = 6
train_and_evaluate(config, sys.argv[1])
"""


@pytest.mark.slow  # ~60 s on 2 loaded cores: a fresh process imports JAX and compiles
def test_a_run_and_its_resume_print_labelled_lines_and_no_orbax_warning(tmp_path):
  workdir = str(tmp_path / "run")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", SCRIPT, workdir], cwd=ROOT, env=env, timeout=600,
                        capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = (done.stdout + done.stderr).splitlines()
  assert not [l for l in lines if "orbax" in l.lower() or "read only" in l], lines
  assert "\r" not in done.stderr  # not a terminal: plain lines, no redrawn bar
  progress = [l for l in lines if "step/s" in l or "s/step" in l]
  assert progress and all(l.startswith("transformer seed 0:") for l in progress), lines
  assert [l for l in progress if " 2/4 " in l and "loss" in l], progress  # one per log_every
  want = f"transformer seed 0: resumed from step 4 ({os.path.join(workdir, 'checkpoints', '4')})"
  assert want in lines, lines
