"""What `experiments/main.py` runs: one config, every variant of a config, or a comparison.

A config with `config.comparison` is the main job (`attnlab.comparison`, configs/compare.py).

A comparison config has `config.variants`, a ConfigDict of complete run configs by name; variant
`name` trains into `<workdir>/<name>` (each resumes on its own) and a summary table of their final
evaluation metrics is printed and written to `<workdir>/summary.json`.
"""
import json
import sys

from attnlab import files
from attnlab.train import Preempted, train_and_evaluate
from attnlab.train.workdir_lock import check_workdir


def _cell(value) -> str:
  """A table cell: floats to 4 decimals, ints and flags as they are, missing or None as '-'."""
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def _table(results: dict) -> str:
  keys = sorted({k for r in results.values() for k in r})
  lines = ["variant".ljust(16) + "".join(k.rjust(18) for k in keys)]
  for name, r in results.items():
    lines.append(name.ljust(16) + "".join(_cell(r.get(k)).rjust(18) for k in keys))
  return "\n".join(lines)


def run(config, workdir: str) -> int:
  """Trains config (or its variants, or its comparison) in workdir; returns the exit code.

  A run stopped by SIGTERM or Ctrl-C saves a checkpoint and returns 143 or 130 (128 + the signal).
  """
  check_workdir(workdir)
  if config.get("comparison"):
    from attnlab import comparison
    try:
      comparison.run(config.comparison, workdir)
    except Preempted as e:
      print(str(e), file=sys.stderr)
      return e.exit_code
    return 0
  variants = config.get("variants")
  runs = dict(variants.items()) if variants else {None: config}
  results = {}
  for name, run_config in runs.items():
    run_dir = workdir if name is None else files.join(workdir, name)
    if name is not None:
      print(f"== {name} -> {run_dir}", file=sys.stderr, flush=True)
    hooks = []
    if run_config.get("log_grad_flow"):
      from attnlab.analysis.flow_logging import GradientFlowLogger
      hooks.append(GradientFlowLogger(run_config))
    try:
      results[name or "run"] = train_and_evaluate(run_config, run_dir, hooks=hooks)
    except Preempted as e:
      print(str(e), file=sys.stderr)
      return e.exit_code
  print(_table(results))
  if variants:
    files.write_text(files.join(workdir, "summary.json"), json.dumps(results, indent=1))
  print(f"results in {files.absolute(workdir)}")
  return 0
