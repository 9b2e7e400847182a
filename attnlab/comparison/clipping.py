"""Clipping part: a tanh RNN at several spectral radii, with and without global-norm clipping."""
import jax

from attnlab import files, sweep
from attnlab.analysis import gradients
from attnlab.analysis.flow_logging import held_out_batch
from attnlab.analysis.runs import load_run
from attnlab.comparison.common import _fixed, _grid, _train_with_flow


def run_clipping(c, root: str) -> dict:
  """A tanh RNN with W_hh of spectral radius r, trained with and without clipping; curves and init norms."""
  cc = c.clipping
  get_config = _fixed(sweep.load_config_file(c.task_configs[cc.task]),
                      {"num_train_steps": cc.steps, "on_nonfinite": "record", "log_every": 1,
                       "task.seq_len": cc.seq_len, "optimizer.learning_rate": cc.learning_rate}, c)
  axes = _grid(model=["rnn"], **{"model.recurrent_scale": cc.radii, "optimizer.clip_norm": cc.clip_norms})
  rows = sweep.run_sweep(get_config, axes, files.join(root, "clipping"), train_group=_train_with_flow)
  out = {"seq_len": cc.seq_len, "runs": []}
  for row in rows:
    run = load_run(row["workdir"], "last")
    batch = held_out_batch(run.config, 16)
    init = run.model.init(jax.random.PRNGKey(run.config.seed), batch["inputs"], batch["lengths"])
    norms = gradients.input_gradient_norms(run.model, init["params"], batch, run.spec)
    m = run.metrics.dropna(subset=["train_loss"])
    out["runs"].append({"radius": row["model.recurrent_scale"], "clip_norm": row["optimizer.clip_norm"],
                        "steps": m["step"].tolist(), "train_loss": m["train_loss"].tolist(),
                        "grad_norm": m["grad_norm"].tolist(), "init_input_grad_norms": norms.tolist(),
                        "eval_loss": row.get("eval_loss"), "workdir": row["workdir"]})
  return out
