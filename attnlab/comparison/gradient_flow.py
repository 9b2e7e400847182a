"""Gradient-flow part: ||dL/dx_t|| at initialisation and after training on the gradient task, per model."""
import json

import jax
import numpy as np

from attnlab import files
from attnlab.analysis import gradients
from attnlab.analysis.flow_logging import held_out_batch
from attnlab.analysis.runs import load_run
from attnlab.train.steps import jit_init


def gradient_flow(rows: list, c) -> dict:
  """grad_norms.json: ||dL/dx_t|| at init and trained for each model on the gradient task."""
  chosen = [r for r in rows if r["task"] == c.gradient_task and r["length"] == c.gradient_length
            and (r["seed_index"] == 0 if "seed_index" in r else r["seed"] == c.seeds[0])]
  out = {"T": c.gradient_length, "task": c.gradient_task, "init": {}, "trained": {}, "fits": {},
         "state_jacobian": {}, "forget_gate": {}}
  for row in chosen:
    run = load_run(row["workdir"], "last")
    batch = held_out_batch(run.config, 16)
    init_params = jit_init(run.model.init)(jax.random.PRNGKey(run.config.seed), batch["inputs"],
                                           batch["lengths"])["params"]
    model = row["model"]
    for when, params in (("init", init_params), ("trained", run.params)):
      norms = gradients.input_gradient_norms(run.model, params, batch, run.spec)
      out[when][model] = norms.tolist()
      out["fits"].setdefault(model, {})[when] = gradients.fit_decay(norms)
      if run.config.model.name in ("rnn", "lstm", "gru"):  # variants too (lstm_chrono is an lstm)
        cell = params["backbone"]["layer_0_fwd"]["cell"]
        x = run.model.apply({"params": params}, batch["inputs"], method="embed_inputs")
        jac = gradients.state_jacobian_norms(run.config.model.name, cell, x[:4])
        out["state_jacobian"].setdefault(model, {})[when] = {
            "fit": gradients.fit_decay(log10=jac["log10_norms"]),
            "top_singular_value_mean": float(jac["singular_values"][..., 0].mean())}
    flow = [json.loads(line) for line in files.read_text(files.join(row["workdir"], "grad_flow.jsonl")
                                                         ).splitlines()] if files.exists(
        files.join(row["workdir"], "grad_flow.jsonl")) else []
    if flow and "forget_gate" in flow[0]:
      out["forget_gate"][model] = {"steps": [r["step"] for r in flow],
                                   "mean": [float(np.mean(r["forget_gate"])) for r in flow],
                                   "span_decades": [gradients.fit_decay(r["norms"])["span_decades"]
                                                    for r in flow]}
  return out
