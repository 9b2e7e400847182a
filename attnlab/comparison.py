"""The main job: RNN vs LSTM/GRU vs LRU vs attention on long-range tasks, with gradient flow.

`run(comparison, workdir)` runs the parts of a comparison config (see configs/compare.py), each a
sweep of ordinary runs in its own workdir (so everything resumes), then analyses them:
  long_range   model x task x length x seed on the task configs; final eval metrics
  gradients    ||dL/dx_t|| at initialisation and after training on the gradient task, per model
  clipping     a tanh RNN at spectral radii > 1 trained by plain SGD with and without global-norm
               clipping, over seeds: gradient norms before and after clipping, divergence, losses
  seq2seq      encoder-decoders on a seq2seq task; greedy exact-match accuracy by source length
  attention    attention maps of trained models
and writes report.md (`attnlab.analysis.report`), results.json and grad_norms.json.
"""
import json
import os
import sys

import jax
import numpy as np

from attnlab import data, files, models, sweep, tasks
from attnlab.analysis import gradients
from attnlab.analysis.flow_logging import GradientFlowLogger, held_out_batch
from attnlab.analysis.runs import load_run
from attnlab.tasks import metrics as task_metrics
from attnlab.tasks import vocab
from attnlab.train import config as cfg_lib
from attnlab.train import train_seeds
from attnlab.train.run_dir import flatten


def _log(text):
  print(text, file=sys.stderr, flush=True)


def _overrides(c, base: dict, model: str) -> dict:
  """The flat {dotted field: value} a comparison applies to a run of `model`: `base`, then the
  comparison's run_overrides (nested dicts) and model_overrides[model]."""
  out = dict(base)
  if c is not None:
    out.update(flatten(_as_dict(c.get("run_overrides", {}))))
    model_fields = _as_dict(c.get("model_overrides", {}).get(model, {}))
    out.update({f"model.{k}": v for k, v in model_fields.items()})
  return out


def _fixed(get_config, base: dict, c=None):
  """get_config with the comparison's overrides (see `_overrides`) applied to every point."""

  def fixed(arg):
    config = get_config(arg)
    return cfg_lib.apply_overrides(config, _overrides(c, base, config.model.name))

  return fixed


def _as_dict(d) -> dict:
  return d.to_dict() if hasattr(d, "to_dict") else dict(d)


def _train_with_flow(configs, workdirs):
  """Trains runs that differ only in seed as one vmapped program, logging gradient flow if asked."""
  hooks = [[GradientFlowLogger(c)] if c.get("log_grad_flow") else [] for c in configs]
  return train_seeds(configs, workdirs, hooks)


def _grid(**axes) -> dict:
  return {k: list(v) for k, v in axes.items()}


def run_long_range(c, root: str) -> list:
  """Every task: a sweep of model x length x seed; rows with the task's baseline added."""
  rows = []
  for task in c.tasks:
    base = {"num_train_steps": c.steps[task], "log_grad_flow": task == c.gradient_task}
    get_config = _fixed(sweep.load_config_file(c.task_configs[task]), base, c)
    field = c.get("length_fields", {}).get(task, "task.seq_len")
    axes = _grid(model=c.models, **{field: c.lengths[task]}, seed=c.seeds)
    for row in sweep.run_sweep(get_config, axes, files.join(root, "long_range", task),
                               train_group=_train_with_flow):
      point = {k: row[k] for k in axes}
      spec = cfg_lib.task_spec(get_config(sweep.config_arg(point)))
      command = _command(c.task_configs[task], point, row["workdir"],
                         _overrides(c, base, row["model"]))
      rows.append(dict(row, task=task, length=row[field], baseline=spec.baseline,
                       baseline_name=spec.baseline_name, command=command))
  return rows


def _command(config_path, point, workdir, overrides: dict) -> str:
  """The command line that reruns one point on its own."""
  path = os.path.relpath(config_path) if not os.path.relpath(config_path).startswith("..") else config_path
  flags = " ".join(f"--config.{k}={v}" for k, v in overrides.items())
  return (f"python -m experiments.main --config={path}:{sweep.config_arg(point)} "
          f"--workdir={workdir} {flags}")


def gradient_flow(rows: list, c) -> dict:
  """grad_norms.json: ||dL/dx_t|| at init and trained for each model on the gradient task."""
  chosen = [r for r in rows if r["task"] == c.gradient_task and r["length"] == c.gradient_length
            and r["seed"] == c.seeds[0]]
  out = {"T": c.gradient_length, "task": c.gradient_task, "init": {}, "trained": {}, "fits": {},
         "state_jacobian": {}, "forget_gate": {}}
  for row in chosen:
    run = load_run(row["workdir"], "last")
    batch = held_out_batch(run.config, 16)
    init_params = run.model.init(jax.random.PRNGKey(run.config.seed), batch["inputs"],
                                 batch["lengths"])["params"]
    model = row["model"]
    for when, params in (("init", init_params), ("trained", run.params)):
      norms = gradients.input_gradient_norms(run.model, params, batch, run.spec)
      out[when][model] = norms.tolist()
      out["fits"].setdefault(model, {})[when] = gradients.fit_decay(norms)
      if model in ("rnn", "lstm", "gru"):
        cell = params["backbone"]["layer_0_fwd"]["cell"]
        x = run.model.apply({"params": params}, batch["inputs"], method="embed_inputs")
        jac = gradients.state_jacobian_norms(model, cell, x[:4])
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
  cc = c.clipping
  get_config = _fixed(sweep.load_config_file(c.task_configs[cc.task]),
                      {"num_train_steps": cc.steps, "on_nonfinite": "record", "log_every": 1,
                       "task.seq_len": cc.seq_len, "optimizer.learning_rate": cc.learning_rate,
                       "optimizer.name": cc.optimizer, "optimizer.momentum": cc.momentum}, c)
  axes = _grid(model=["rnn"], **{"model.recurrent_scale": cc.radii, "optimizer.clip_norm": cc.clip_norms},
               seed=cc.seeds)
  rows = sweep.run_sweep(get_config, axes, files.join(root, "clipping"), train_group=_train_with_flow)
  spec = cfg_lib.task_spec(get_config("rnn"))
  out = {"task": cc.task, "seq_len": cc.seq_len, "optimizer": cc.optimizer, "momentum": cc.momentum,
         "learning_rate": cc.learning_rate, "steps": cc.steps, "baseline": spec.baseline,
         "baseline_name": spec.baseline_name, "divergence_factor": DIVERGENCE_FACTOR, "runs": []}
  for row in rows:
    run = load_run(row["workdir"], "last")
    norms = None
    if not row["optimizer.clip_norm"]:  # the init does not depend on clipping
      batch = held_out_batch(run.config, 16)
      init = run.model.init(jax.random.PRNGKey(run.config.seed), batch["inputs"], batch["lengths"])
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


def run_seq2seq(c, root: str) -> dict:
  """Encoder-decoders trained on a seq2seq task; greedy exact match by source length on test data."""
  sc = c.seq2seq
  get_config = _fixed(sweep.load_config_file(c.task_configs[sc.task]),
                      {"num_train_steps": sc.steps, "task.max_len": sc.max_len}, c)
  rows = sweep.run_sweep(get_config, _grid(model=sc.models, seed=c.seeds[:1]),
                         files.join(root, "seq2seq"))
  out = {"task": sc.task, "models": {}}
  for row in rows:
    run = load_run(row["workdir"], "last")
    params = cfg_lib.task_params(run.config)
    batch = tasks.generate(sc.task, sc.num_test, seed=0, start=data.split_start("test"), **params)
    decode = jax.jit(lambda p, s, l: models.greedy_decode(
        run.model, {"params": p}, s, l, max_len=batch["target"].shape[1], eos_id=vocab.EOS))
    pred = np.asarray(decode(run.params, batch["source"], batch["source_lengths"]))
    exact = task_metrics.exact_match(pred, batch["target"], batch["target_mask"])
    by_len = task_metrics.accuracy_by_length(exact, batch["source_lengths"])
    out["models"][row["model"]] = {"exact_by_length": by_len, "exact": float(exact.mean()),
                                   "eval_score": row.get("eval_score"), "workdir": row["workdir"]}
  return out


def attention_maps(long_range_rows: list, seq2seq: dict, c) -> dict:
  """Weights of trained Transformers (copy: the diagonal; recall: the query on its key) and of
  RNNsearch on the seq2seq task. Keys: 'transformer' (the first of c.attention_tasks trained),
  'transformer:<task>' for the others, 'rnnsearch'."""
  out = {}
  for task in c.attention_tasks:
    tf_rows = [r for r in long_range_rows if r["model"] == "transformer" and r["task"] == task]
    if not tf_rows:
      continue
    row = min(tf_rows, key=lambda r: r["length"])
    run = load_run(row["workdir"], "best")
    batch = held_out_batch(run.config, 1)
    _, state = run.model.apply({"params": run.params}, batch["inputs"], batch["lengths"],
                               mutable=["intermediates"])
    layers = [np.asarray(w)[0].mean(axis=0) for w in jax.tree.leaves(state["intermediates"])]
    key = "transformer" if "transformer" not in out else f"transformer:{task}"
    out[key] = {"task": task, "seq_len": row["length"], "inputs": batch["inputs"][0].tolist(),
                "layers": [l.tolist() for l in layers]}
  if "seq2seq_attention" in seq2seq.get("models", {}):
    run = load_run(seq2seq["models"]["seq2seq_attention"]["workdir"], "best")
    params = cfg_lib.task_params(run.config)
    batch = tasks.generate(run.config.task.name, 1, seed=0, start=data.split_start("test"), **params)
    _, state = run.model.apply({"params": run.params}, batch["source"], batch["target_inputs"],
                               batch["source_lengths"], mutable=["intermediates"])
    [weights] = jax.tree.leaves(state["intermediates"])
    n_src, n_tgt = int(batch["source_lengths"][0]), int(batch["target_lengths"][0])
    out["rnnsearch"] = {"task": run.config.task.name, "source": batch["source"][0, :n_src].tolist(),
                        "weights": np.asarray(weights)[0, :n_tgt, :n_src].tolist()}
  return out


def run(comparison, workdir: str) -> dict:
  """Runs every part of the comparison config in `workdir` and writes the report."""
  from attnlab.analysis import report
  results = {"long_range": run_long_range(comparison, workdir)}
  _log("== gradient flow")
  grad_norms = gradient_flow(results["long_range"], comparison)
  _log("== clipping")
  results["clipping"] = run_clipping(comparison, workdir)
  _log("== seq2seq")
  results["seq2seq"] = run_seq2seq(comparison, workdir)
  results["attention"] = attention_maps(results["long_range"], results["seq2seq"], comparison)
  files.write_text(files.join(workdir, "grad_norms.json"), json.dumps(grad_norms))
  files.write_text(files.join(workdir, "results.json"), json.dumps(results, default=float))
  path = report.write_report(workdir, results, grad_norms, comparison)
  _log(f"report: {path}")
  return results
