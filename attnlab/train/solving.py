"""When to evaluate, when a run has solved its task, and the final held-out evaluation.

  next_eval_step(step, config) -> int     the first evaluation step after `step`
  eval_steps(config, up_to) -> list       every evaluation step in 1 .. up_to (schedule only)
  final_batches(config, spec, loader, n)  the host batches of n test sequences, padding masked out
  final_metrics(sums) -> dict             final_loss, final_score, ..., final_wrong,
                                          final_sequences, final_errors, final_scored
  length_metrics(length, sums) -> dict    the same at one of config.eval_lengths: final_len{L}_*

config.eval_lengths: at the end of a run the test split is read again with the task's seq_len set to
each length (`length_params`), `eval_length_sequences(config)` sequences each: evaluation at lengths
the model was not trained on (length generalisation).

The schedule depends on the step alone (it restarts from 0 on every resume), so a resumed run
evaluates at the same steps as one that was never stopped. The run's last step is always evaluated
besides (see the trainer).
"""
import math

import jax
import numpy as np

from attnlab.train import losses


def next_eval_step(step: int, config) -> int:
  """'fixed': the next multiple of eval_every; 'geometric': from 0, s <- s + max(eval_every,
  floor(eval_precision * s)) until s > step."""
  every = config.eval_every
  if config.eval_schedule == "fixed":
    return (step // every + 1) * every
  s = 0
  while s <= step:
    s += max(every, math.floor(config.eval_precision * s))
  return s


def eval_steps(config, up_to: int) -> list:
  """The scheduled evaluation steps in 1 .. up_to."""
  out, s = [], next_eval_step(0, config)
  while s <= up_to:
    out.append(s)
    s = next_eval_step(s, config)
  return out


def weight_key(spec) -> str:
  """The batch key whose zeros make an example count in no metric."""
  return "target_mask" if spec.kind == "seq2seq" else "mask"


def final_batches(config, spec, loader, num_sequences: int) -> list:
  """This host's batches of the first `num_sequences` test sequences, from `loader`.

  `loader` reads whole global batches over ceil(n / batch_size) * batch_size sequences, this host's
  share of each; sequences at or past n get weight 0, so they count in no metric. Host h of c holds
  global sequences (b * per_host + j) * c + h (make_loader's unshuffled sharding).
  """
  count = jax.process_count()
  per_host = config.batch_size // count
  num_batches = -(-num_sequences // config.batch_size)
  out = []
  for b, batch in zip(range(num_batches), loader):
    index = (b * per_host + np.arange(per_host)) * count + jax.process_index()
    keep = index < num_sequences
    weight = batch[weight_key(spec)]
    batch = dict(batch)
    batch[weight_key(spec)] = weight * keep.reshape((-1,) + (1,) * (weight.ndim - 1))
    out.append(batch)
  if len(out) != num_batches:
    raise ValueError(f"config.final_eval_sequences={num_sequences}: the test split has fewer "
                     f"than {num_batches} batches of {config.batch_size}")
  return out


def final_metrics(sums) -> dict:
  """Metric sums of the final evaluation -> final_* means, and exact counts: final_wrong of
  final_sequences (sequences missing the per-sequence criterion) and final_errors of final_scored
  (scored items missed: symbols, steps or reads of per-step tasks, else sequences)."""
  wrong, sequences = (float(x) for x in jax.device_get(sums["wrong"]))
  right, scored = (float(x) for x in jax.device_get(sums["score"]))
  means = losses.summarize({k: v for k, v in sums.items() if k != "wrong"})
  return {**{f"final_{k}": v for k, v in means.items()},
          "final_wrong": int(round(wrong)), "final_sequences": int(round(sequences)),
          "final_errors": int(round(scored - right)), "final_scored": int(round(scored))}


def length_params(spec_params: dict, length: int) -> dict:
  """The task parameters at one of config.eval_lengths: seq_len set to `length`."""
  return {**spec_params, "seq_len": length}


def eval_length_sequences(config) -> int:
  """Test sequences per length of config.eval_lengths: final_eval_sequences, else the size of the
  evaluation set (num_eval_batches x batch_size)."""
  return config.final_eval_sequences or config.num_eval_batches * config.batch_size


def length_metrics(length: int, sums) -> dict:
  """final_metrics of the evaluation at seq_len `length`, named final_len{length}_*."""
  return {f"final_len{length}_{k[len('final_'):]}": v for k, v in final_metrics(sums).items()}
