"""Seq2seq part: encoder-decoders on a seq2seq task; greedy exact-match accuracy by source length."""
import jax
import numpy as np

from attnlab import data, files, models, sweep, tasks
from attnlab.analysis.runs import load_run
from attnlab.comparison.common import _fixed, _grid, _log, _train_with_flow, run_concurrently
from attnlab.tasks import metrics as task_metrics
from attnlab.tasks import vocab
from attnlab.train import config as cfg_lib


def run_seq2seq(c, root: str) -> dict:
  """Encoder-decoders trained on a seq2seq task; greedy exact match by source length on test data."""
  _log("== seq2seq")
  sc = c.seq2seq
  get_config = _fixed(sweep.load_config_file(c.task_configs[sc.task]),
                      {"num_train_steps": sc.steps, "task.max_len": sc.max_len}, c)
  rows = sweep.run_sweep(get_config, _grid(model=sc.models, seed=c.seeds[:1]),
                         files.join(root, "seq2seq"), train_group=_train_with_flow,
                         map_groups=run_concurrently)
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
