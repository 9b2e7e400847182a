"""Gradient-flow part: ||dL/dx_t|| at initialisation and after training, per model, over seeds and
lengths, and the decay fit at every evaluation during training.

Settings: `c.gradient_task`; `c.gradient_flow.lengths` (default: (c.gradient_length,)),
`c.gradient_flow.seeds` (default: every seed trained there), `c.gradient_flow.num_examples`
(default 16). Every trained run of the task at those lengths and seeds is measured.

grad_norms.json:
  task, lengths, seeds, T (the first length)
  by_length[str(T)]: {"fits": {model: {"init"|"trained": gradients.aggregate_fits}} (mean, std and
    R^2 over seeds, each seed's fit in per_seed), "norms": {model: {when: [curve per seed]}},
    "state_jacobian": {model: {when: {"fit": aggregate, "top_singular_value_mean", _std}}},
    "through_training": {model: [per seed {"seed", "steps", "decades_per_step", "r2",
    "span_decades"}]} (runs that logged grad_flow.jsonl: config.log_grad_flow), "missing": models
    of the task with no trained run at T}
  init, trained: {model: geometric mean curve over seeds} at the first length; fits, state_jacobian:
    by_length of the first length; forget_gate: {model: {"steps", "mean", "span_decades"}} of an
    LSTM's first measured seed at the first length.
"""
import jax
import numpy as np

from attnlab import files
from attnlab.analysis import gradients
from attnlab.analysis.flow_logging import FILE, held_out_batch, read_grad_flow
from attnlab.analysis.runs import load_run
from attnlab.train.steps import jit_init

CELLS = ("rnn", "lstm", "gru")  # variants too (lstm_chrono is an lstm)


def settings(c, rows: list) -> tuple:
  """(lengths, seeds, num_examples) of the part; seeds default to every seed trained at them."""
  gf = c.get("gradient_flow") or {}
  lengths = tuple(int(t) for t in (gf.get("lengths") or (c.gradient_length,)))
  seeds = gf.get("seeds") or sorted({r["seed"] for r in rows if r["task"] == c.gradient_task
                                     and r["length"] in lengths})
  num_examples = int(gf.get("num_examples", 16))
  if num_examples < 1:
    raise ValueError(f"comparison.gradient_flow.num_examples={num_examples}: needs at least 1")
  return lengths, tuple(seeds), num_examples


def _measure(row, num_examples: int) -> dict:
  """One run at init and trained: curves, fits, and the recurrent state's Jacobians."""
  run = load_run(row["workdir"], "last")
  batch = held_out_batch(run.config, num_examples)
  init_params = jit_init(run.model.init)(jax.random.PRNGKey(run.config.seed), batch["inputs"],
                                         batch["lengths"])["params"]
  out = {"norms": {}, "fits": {}, "jacobian": {}}
  for when, params in (("init", init_params), ("trained", run.params)):
    norms = gradients.input_gradient_norms(run.model, params, batch, run.spec)
    out["norms"][when], out["fits"][when] = norms.tolist(), gradients.fit_decay(norms)
    if run.config.model.name in CELLS:
      cell = params["backbone"]["layer_0_fwd"]["cell"]
      x = run.model.apply({"params": params}, batch["inputs"], method="embed_inputs")
      jac = gradients.state_jacobian_norms(run.config.model.name, cell, x[:4])
      out["jacobian"][when] = {"fit": gradients.fit_decay(log10=jac["log10_norms"]),
                               "top_singular_value_mean": float(jac["singular_values"][..., 0].mean())}
  return out


def through_training(workdir: str, seed) -> dict:
  """The decay fit of every ||dL/dx_t|| curve a run logged during training (grad_flow.jsonl), or
  None if it logged none: {"seed", "steps", "decades_per_step", "r2", "span_decades"} (+ the LSTM's
  "forget_gate_mean")."""
  if not files.exists(files.join(workdir, FILE)):
    return None
  records = read_grad_flow(workdir)
  if not records:
    return None
  fits = [gradients.fit_decay(r["norms"]) for r in records]
  out = {"seed": seed, "steps": [r["step"] for r in records]}
  out.update({k: [f[k] for f in fits] for k in gradients.FIT_KEYS})
  if "forget_gate" in records[0]:
    out["forget_gate_mean"] = [float(np.mean(r["forget_gate"])) for r in records]
  return out


def _at_length(chosen: list, models: list, seeds, num_examples: int) -> dict:
  out = {"fits": {}, "norms": {}, "state_jacobian": {}, "through_training": {},
         "missing": [m for m in models if not any(r["model"] == m for r in chosen)]}
  for model in dict.fromkeys(r["model"] for r in chosen):
    runs = sorted((r for r in chosen if r["model"] == model), key=lambda r: seeds.index(r["seed"]))
    measured = [_measure(r, num_examples) for r in runs]
    run_seeds = [r["seed"] for r in runs]
    out["norms"][model] = {w: [m["norms"][w] for m in measured] for w in ("init", "trained")}
    out["fits"][model] = {w: gradients.aggregate_fits([m["fits"][w] for m in measured], run_seeds)
                          for w in ("init", "trained")}
    if measured[0]["jacobian"]:
      out["state_jacobian"][model] = {}
      for w in ("init", "trained"):
        top, top_std = gradients.mean_std([m["jacobian"][w]["top_singular_value_mean"]
                                           for m in measured])
        out["state_jacobian"][model][w] = {
            "fit": gradients.aggregate_fits([m["jacobian"][w]["fit"] for m in measured], run_seeds),
            "top_singular_value_mean": top, "top_singular_value_std": top_std}
    flows = [f for f in (through_training(r["workdir"], r["seed"]) for r in runs) if f]
    if flows:
      out["through_training"][model] = flows
  return out


def gradient_flow(rows: list, c) -> dict:
  """grad_norms.json (see the module doc) for every trained run of the gradient task at the part's
  lengths and seeds."""
  lengths, seeds, num_examples = settings(c, rows)
  task_rows = [r for r in rows if r["task"] == c.gradient_task]
  models = list(dict.fromkeys(r["model"] for r in task_rows))
  out = {"task": c.gradient_task, "T": lengths[0], "lengths": list(lengths), "seeds": list(seeds),
         "num_examples": num_examples, "by_length": {}}
  for length in lengths:
    chosen, seen = [], set()
    for r in task_rows:  # one run per model and seed (a run in two parts is measured once)
      if r["length"] == length and r["seed"] in seeds and (r["model"], r["seed"]) not in seen:
        seen.add((r["model"], r["seed"]))
        chosen.append(r)
    out["by_length"][str(length)] = _at_length(chosen, models, list(seeds), num_examples)
  first = out["by_length"][str(lengths[0])]
  for when in ("init", "trained"):
    out[when] = {m: gradients.geometric_mean_curve(n[when]).tolist() for m, n in first["norms"].items()}
  out["fits"], out["state_jacobian"], out["forget_gate"] = first["fits"], first["state_jacobian"], {}
  for model, flows in first["through_training"].items():
    if "forget_gate_mean" in flows[0]:
      out["forget_gate"][model] = {"steps": flows[0]["steps"], "mean": flows[0]["forget_gate_mean"],
                                   "span_decades": flows[0]["span_decades"]}
  return out
