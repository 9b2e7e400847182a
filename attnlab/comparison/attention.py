"""Attention part: attention maps of trained Transformers and of RNNsearch."""
import jax
import numpy as np

from attnlab import data, tasks
from attnlab.analysis.flow_logging import held_out_batch
from attnlab.analysis.runs import load_run, with_plain_attention
from attnlab.train import config as cfg_lib


def attention_maps(trained_rows: list, seq2seq: dict, c) -> dict:
  """Weights of trained Transformers (from the long-range or learning-cost rows) (copy: the diagonal; recall: the query on its key) and of
  RNNsearch on the seq2seq task. Keys: 'transformer' (the first of c.attention_tasks trained),
  'transformer:<task>' for the others, 'rnnsearch'."""
  out = {}
  for task in c.attention_tasks:
    tf_rows = [r for r in trained_rows if r["model"] == "transformer" and r["task"] == task]
    if not tf_rows:
      continue
    row = min(tf_rows, key=lambda r: r["length"])
    run = load_run(row["workdir"], "best")
    batch = held_out_batch(run.config, 1)
    _, state = with_plain_attention(run).apply({"params": run.params}, batch["inputs"],
                                                batch["lengths"], mutable=["intermediates"])
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
