"""attnlab.docs: every results table of README.md and docs/results/*/README.md is what its results
file renders to, a changed number is caught, and the CLI's errors are one line."""
import os
import shutil

import numpy as np
import pytest

from attnlab.docs import __main__ as cli
from attnlab.docs import learning_cost_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEW = "docs/results/learning_cost_minrnn/README.md"


def test_committed_tables_match_their_results_files(capsys):
  assert cli.main(["--check", "--root", ROOT]) == 0, capsys.readouterr().out


@pytest.fixture
def tree(tmp_path):
  """A copy of README.md and docs/ (the sources the tables read)."""
  shutil.copy(os.path.join(ROOT, "README.md"), tmp_path / "README.md")
  shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs",
                  ignore=shutil.ignore_patterns("*.png"))
  return tmp_path


def test_a_changed_number_fails_the_check_and_write_restores_it(tree, capsys):
  readme = tree / "README.md"
  text = readme.read_text()
  block = text.index("table=learning_cost_by_model")
  cell = text.index("| 19,776 |", block)  # the GRU's T=100 median, inside the generated table
  readme.write_text(text[:cell] + "| 19,777 |" + text[cell + len("| 19,776 |"):])
  assert cli.main(["--check", "--root", str(tree)]) == 1
  out = capsys.readouterr().out
  assert "README.md: table learning_cost_by_model differs" in out
  assert "-| GRU (69.5k) | 9,344 | 16,384 | 19,777 |" in out
  assert "+| GRU (69.5k) | 9,344 | 16,384 | 19,776 |" in out
  assert cli.main(["--write", "--root", str(tree)]) == 0
  assert readme.read_text() == text
  assert cli.main(["--check", "--root", str(tree)]) == 0


@pytest.mark.parametrize("change, message", [
    ("table=learning_cost_by_length", "unknown table 'no_such_table'"),
    ("learning_cost_minrnn/results.json", "source file not found: docs/results/gone.json"),
])
def test_cli_errors_are_one_line(tree, capsys, change, message):
  doc = tree / FEW
  replacement = {"table=learning_cost_by_length": "table=no_such_table",
                 "learning_cost_minrnn/results.json": "gone.json"}[change]
  doc.write_text(doc.read_text().replace(change, replacement, 1))
  assert cli.main(["--check", "--root", str(tree), FEW]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and message in err, err


def _point(model, length, solved, cap=1000, **extra):
  """A learning-cost point whose seeds solved at `solved` (None = censored)."""
  seeds = [{"seed": i, "solved_sequences": s, "censored": s is None, "final_wrong": 3,
            "final_sequences": 2560} for i, s in enumerate(solved)]
  finite = sorted(np.inf if s is None else s for s in solved)
  med = finite[len(finite) // 2]
  return dict({"task": "adding", "model": model, "length": length, "status": "trained",
               "seeds": seeds, "cap_sequences": cap, "params": 1234,
               "median": None if np.isinf(med) else float(med),
               "median_censored": bool(np.isinf(med))},
              **extra)


def test_learning_cost_table_merges_sources_and_fits_the_exponent_in_float64():
  first = {"learning_cost": {"points": [
      _point("gru", 10, [100, 200, 300]), _point("gru", 20, [300, 400, None]),
      _point("gru", 40, [900, 900, 900]), _point("rnn", 10, [None, None, None]),
      {"task": "adding", "model": "rnn", "length": 20, "status": "skipped: failed at shorter T"}]}}
  # The rerun replaces T=40, with the Kaplan-Meier fields of later recordings.
  rerun = {"learning_cost": {"points": [
      _point("gru", 40, [500, 600, 700], median_sequences=650.0, median_ci95=[500.0, None])]}}
  sources = [("a/results.json", first), ("b/rerun/results.json", rerun)]
  lines = learning_cost_tables.by_model(sources, {}, doc="a/README.md")
  slope = np.polyfit(np.log([10.0, 20.0, 40.0]), np.log([200.0, 400.0, 650.0]), 1)[0]
  assert lines[0] == "| model (params) | T=10 | T=20 | T=40 | growth exponent (T=10-40) |"
  assert lines[2] == f"| GRU (1.2k) | 200 | 400 (2/3 seeds) | 650 [500, >1,000] [1] | {slope:.2f} |"
  assert lines[3] == "| tanh RNN (1.2k) | >1,000 (all 3) | not trained | | — |"
  assert lines[-1] == "[1] ../b/rerun"
