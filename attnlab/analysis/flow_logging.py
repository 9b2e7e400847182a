"""Gradient flow measured during training: a trainer hook for `train_and_evaluate(..., hooks=...)`.

At initialisation and at every evaluation it measures ||dL/dx_t|| on a fixed batch of validation
examples, appends the whole curve to `<workdir>/grad_flow.jsonl` (one JSON object per call:
step, norms, and for an LSTM the forget-gate activation per step) and logs the decay fit
(`grad_decay_per_step`, `grad_span_decades`, `grad_fit_r2`, and `forget_gate_mean`) with the
run's metrics. Enabled by `config.log_grad_flow = True`.
"""
import json

import numpy as np

from attnlab import data, files, models, tasks
from attnlab.analysis import gradients
from attnlab.train import config as cfg_lib
from attnlab.train.metric_writer import read_jsonl

FILE = "grad_flow.jsonl"


class GradientFlowLogger:

  def __init__(self, config, num_examples: int = 8):
    self.spec = cfg_lib.task_spec(config)
    self.model = models.build(cfg_lib.model_config(config, self.spec))
    self.cell = config.model.name if config.model.name in ("rnn", "lstm", "gru") else None
    self.batch = held_out_batch(config, num_examples, "validation")

  def __call__(self, step, params, workdir):
    norms = gradients.input_gradient_norms(self.model, params, self.batch, self.spec)
    fit = gradients.fit_decay(norms)
    record = {"step": int(step), "norms": norms.tolist()}
    scalars = {"grad_decay_per_step": fit["decades_per_step"], "grad_span_decades": fit["span_decades"],
               "grad_fit_r2": fit["r2"]}
    if self.cell == "lstm":
      x = self.model.apply({"params": params}, self.batch["inputs"], method="embed_inputs")
      gates = gradients.forget_gate_activations(params["backbone"]["layer_0_fwd"]["cell"], x)
      record["forget_gate"] = gates.mean(axis=(0, 2)).tolist()
      scalars["forget_gate_mean"] = float(gates.mean())
    files.append_text(files.join(workdir, FILE), json.dumps(record) + "\n")
    return scalars


def held_out_batch(config, n: int, split: str = "test") -> dict:
  """The first n examples of a split of config's task (numeric keys only), fixed across calls."""
  params = cfg_lib.task_params(config)
  unlimited = tasks.num_examples(config.task.name, **params) is None
  batch = tasks.generate(config.task.name, n, seed=0, start=data.split_start(split) if unlimited else 0,
                         **params)
  return {k: v for k, v in batch.items() if v.dtype != object}


def read_grad_flow(workdir: str) -> list:
  """The records of a run's grad_flow.jsonl, with norms as NumPy arrays."""
  rows = read_jsonl(files.join(workdir, FILE))
  for row in rows:
    row["norms"] = np.asarray(row["norms"])
    if "forget_gate" in row:
      row["forget_gate"] = np.asarray(row["forget_gate"])
  return rows
