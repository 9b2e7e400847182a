"""The main job: RNN vs LSTM/GRU vs LRU vs attention on long-range tasks, with gradient flow.

`run(comparison, workdir)` runs the parts of a comparison config (see configs/compare.py), each a
sweep of ordinary runs in its own workdir (so everything resumes), then analyses them:
  long_range   model x task x length x seed on the task configs; final eval metrics
  gradients    ||dL/dx_t|| at initialisation and after training on the gradient task, per model and
               seed at comparison.gradient_flow.lengths, and its decay during training
  clipping     a tanh RNN at several spectral radii, with and without global-norm clipping
  seq2seq      encoder-decoders on a seq2seq task; greedy exact-match accuracy by source length
  attention    attention maps of trained models
  learning_cost  training sequences to solve each task against T, per model (stop when solved)
  generalisation trained long-range / learning-cost models evaluated at 2x and 4x their length
  struggles    where attention struggles: parity and flip-flop at 1x-8x the training length, MQAR
               against the number of key-value pairs beside each model's state bytes
  tuning       every model's learning rate and schedule by one sweep and one pick rule (tuning.py)
`comparison.parts` names the parts to run (default: the first five). It writes report.md
(`attnlab.analysis.report`), results.json and grad_norms.json.
"""
import functools
import json

from attnlab import files, versions
from attnlab.comparison.attention import attention_maps
from attnlab.comparison.clipping import run_clipping
from attnlab.comparison.common import _log, run_concurrently, training_slots
from attnlab.comparison.generalisation import run_generalisation
from attnlab.comparison.gradient_flow import gradient_flow
from attnlab.comparison.learning_cost import as_rows, run_learning_cost
from attnlab.comparison.long_range import run_long_range
from attnlab.comparison.seq2seq import run_seq2seq
from attnlab.comparison.state_tracking import run_state_tracking
from attnlab.comparison.tuning import run_tuning

__all__ = ["run", "run_long_range", "gradient_flow", "run_clipping", "run_seq2seq", "attention_maps",
           "run_learning_cost", "run_generalisation", "run_state_tracking", "run_tuning", "PARTS",
           "DEFAULT_PARTS"]

PARTS = ("long_range", "gradients", "clipping", "seq2seq", "attention", "learning_cost", "generalisation",
         "struggles", "tuning")
DEFAULT_PARTS = PARTS[:5]


def _parts(comparison) -> tuple:
  parts = tuple(comparison.get("parts", DEFAULT_PARTS))
  unknown = [p for p in parts if p not in PARTS]
  if unknown:
    raise ValueError(f"comparison.parts={parts!r}: unknown {unknown}; valid parts: {list(PARTS)}")
  return parts


def run(comparison, workdir: str) -> dict:
  """Runs the parts of the comparison config named by comparison.parts in `workdir`; writes the report."""
  from attnlab.analysis import report, struggles_report, tuning_report
  parts, results, grad_norms = _parts(comparison), {}, None
  with training_slots(comparison.get("workers", 1)):
    # the parts that train, concurrently when comparison.workers > 1 (each analyses its own runs)
    training = {"long_range": run_long_range, "learning_cost": run_learning_cost,
                "clipping": run_clipping, "seq2seq": run_seq2seq}
    names = [name for name in training if name in parts]
    for name, result in zip(names, run_concurrently(
        [functools.partial(training[name], comparison, workdir) for name in names])):
      results[name] = result
  trained = [dict(r, part="long_range") for r in results.get("long_range", [])]
  trained += [dict(r, part="learning_cost") for r in as_rows(results.get("learning_cost", {"points": []}))]
  if "gradients" in parts:
    _log("== gradient flow")
    grad_norms = gradient_flow(trained, comparison)
    files.write_text(files.join(workdir, "grad_norms.json"), json.dumps(grad_norms))
  if "attention" in parts:
    results["attention"] = attention_maps(trained, results.get("seq2seq", {}), comparison)
  if "generalisation" in parts:
    results["generalisation"] = run_generalisation(trained, comparison)
  extra, extra_commands = [], []
  if "struggles" in parts:
    results["struggles"] = run_state_tracking(comparison, workdir)
    extra = struggles_report.sections(results["struggles"], files.absolute(workdir))
    extra_commands = struggles_report.commands(results["struggles"])
  if "tuning" in parts:
    results["tuning"] = run_tuning(comparison, workdir)
    extra += tuning_report.section(results["tuning"])
    extra_commands += tuning_report.commands(results["tuning"])
  results["versions"] = versions.versions()  # what the recording ran with, and on what
  results["device"] = versions.device()
  files.write_text(files.join(workdir, "results.json"), json.dumps(results, default=float))
  path = report.write_report(workdir, results, grad_norms, comparison, extra, extra_commands)
  _log(f"report: {path}")
  return results
