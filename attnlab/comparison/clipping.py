"""Clipping part: a tanh RNN at spectral radii r > 1, trained by plain SGD (as Pascanu et al. 2013)
with and without global-norm clipping, over seeds: loss and gradient norms before and after
clipping, the step each run diverged at, and the gradient norms through time at init."""
import jax
import numpy as np

from attnlab import files, sweep
from attnlab.analysis import gradients
from attnlab.analysis.flow_logging import held_out_batch
from attnlab.analysis.runs import load_run
from attnlab.comparison.common import _fixed, _grid, _log, _train_with_flow, run_concurrently
from attnlab.train import config as cfg_lib
from attnlab.train.steps import jit_init


DIVERGENCE_FACTOR = 10.0  # a run diverged once its loss exceeds this times max(baseline, first loss)


def divergence_step(steps, losses, baseline: float, factor: float = DIVERGENCE_FACTOR):
  """The first step whose training loss is non-finite or above factor * max(baseline, first loss);
  None if there is none. (The first loss counts too: an untrained readout can start above the
  baseline, e.g. adding's tanh RNN at MSE 2-5 against 0.167.)"""
  losses = np.asarray(losses, np.float64)
  if not len(losses):
    return None
  limit = factor * max(baseline, losses[0]) if np.isfinite(losses[0]) else -np.inf
  bad = np.flatnonzero(~np.isfinite(losses) | (losses > limit))
  return int(steps[bad[0]]) if len(bad) else None


def _norm_stats(values) -> dict:
  """max (inf once a step was non-finite) and median over the finite steps of a gradient-norm curve."""
  v = np.asarray(values, np.float64)
  if not len(v):
    return {"max": None, "median": None}
  finite = v[np.isfinite(v)]
  return {"max": float(v.max()) if len(finite) == len(v) else float("inf"),
          "median": float(np.median(finite)) if len(finite) else None}


def _final(losses):
  """The mean training loss over the last 10% of the steps (NaN if any of them was)."""
  return float(np.mean(losses[-max(1, len(losses) // 10):])) if len(losses) else None


def run_clipping(c, root: str) -> dict:
  """A tanh RNN with W_hh of spectral radius r, trained by c.clipping.optimizer with and without
  global-norm clipping, over c.clipping.seeds: per run the loss and gradient-norm curves (before
  and after clipping), their max/median, the step it diverged at (`divergence_step`) and the
  gradient norms through time at init."""
  _log("== clipping")
  cc = c.clipping
  get_config = _fixed(sweep.load_config_file(c.task_configs[cc.task]),
                      {"num_train_steps": cc.steps, "on_nonfinite": "record", "log_every": 1,
                       "task.seq_len": cc.seq_len, "optimizer.learning_rate": cc.learning_rate,
                       "optimizer.name": cc.optimizer, "optimizer.momentum": cc.momentum}, c)
  axes = _grid(model=["rnn"], **{"model.recurrent_scale": cc.radii, "optimizer.clip_norm": cc.clip_norms},
               seed=cc.seeds)
  rows = sweep.run_sweep(get_config, axes, files.join(root, "clipping"), train_group=_train_with_flow,
                         map_groups=run_concurrently)
  spec = cfg_lib.task_spec(get_config("rnn"))
  out = {"task": cc.task, "seq_len": cc.seq_len, "optimizer": cc.optimizer, "momentum": cc.momentum,
         "learning_rate": cc.learning_rate, "steps": cc.steps, "baseline": spec.baseline,
         "baseline_name": spec.baseline_name, "divergence_factor": DIVERGENCE_FACTOR, "runs": []}
  for row in rows:
    run = load_run(row["workdir"], "last")
    norms = None
    if not row["optimizer.clip_norm"]:  # the init does not depend on clipping
      batch = held_out_batch(run.config, 16)
      init = jit_init(run.model.init)(jax.random.PRNGKey(run.config.seed), batch["inputs"],
                                      batch["lengths"])
      norms = gradients.input_gradient_norms(run.model, init["params"], batch, run.spec).tolist()
    # the rows the trainer logs every step (they have a learning rate); their loss may be NaN
    m = run.metrics[run.metrics["learning_rate"].notna()].drop_duplicates("step", keep="last")
    clipped = m["grad_norm_clipped"] if "grad_norm_clipped" in m else m["grad_norm"]
    curve = {"steps": m["step"].tolist(), "train_loss": m["train_loss"].tolist(),
             "grad_norm": m["grad_norm"].tolist(), "grad_norm_clipped": clipped.tolist()}
    out["runs"].append({
        "radius": row["model.recurrent_scale"], "clip_norm": row["optimizer.clip_norm"],
        "seed": row["seed"], **curve,
        "grad_norm_stats": _norm_stats(curve["grad_norm"]),
        "grad_norm_clipped_stats": _norm_stats(curve["grad_norm_clipped"]),
        "diverged_step": divergence_step(curve["steps"], curve["train_loss"], spec.baseline),
        "nonfinite_step": divergence_step(curve["steps"], curve["train_loss"], spec.baseline, np.inf),
        "final_train_loss": _final(curve["train_loss"]),
        "init_input_grad_norms": norms, "eval_loss": row.get("eval_loss"),
        "workdir": row["workdir"]})
  return out
