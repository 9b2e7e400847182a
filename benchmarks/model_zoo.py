"""Parameter count and forward+backward time of every registry model at one standard size.

  python -m benchmarks.model_zoo [--batch=32] [--length=256] [--width=128] [--repeats=5] [--json=PATH]

Width is hidden_size / d_model (= 128, the registry default); token inputs over a vocabulary of 16,
10 classes per sequence (seq2seq: target length = source length). Time is the median of `repeats`
calls of a jitted value_and_grad, after one call that compiles (reported separately).
"""
import json
import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from attnlab import models

flags.DEFINE_integer("batch", 32, "batch size B")
flags.DEFINE_integer("length", 256, "sequence length T")
flags.DEFINE_integer("width", 128, "hidden_size / d_model")
flags.DEFINE_integer("repeats", 5, "timed calls per model")
flags.DEFINE_string("json", None, "also write the results to this file")
flags.DEFINE_list("models", list(models.MODELS), "which registry names to time")
FLAGS = flags.FLAGS
VOCAB = 16


def model_and_args(name, batch, length, width):
  cfg = models.default_config(name)
  cfg.vocab_size = VOCAB
  for key in ("hidden_size", "d_model", "state_size"):
    if key in cfg:
      cfg[key] = width
  if name in models.SEQUENCE_MODELS:
    cfg.num_outputs = 10
  tokens = jax.random.randint(jax.random.PRNGKey(0), (batch, length), 3, VOCAB)
  args = (tokens, tokens) if name in models.SEQ2SEQ_MODELS else (tokens,)
  return models.build(cfg), args


def time_model(name, batch, length, width, repeats):
  model, args = model_and_args(name, batch, length, width)
  params = model.init(jax.random.PRNGKey(1), *args)["params"]
  loss = lambda p: jnp.mean(model.apply({"params": p}, *args) ** 2)
  step = jax.jit(jax.value_and_grad(loss))
  start = time.perf_counter()
  jax.block_until_ready(step(params))
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step(params))
    times.append(time.perf_counter() - start)
  return {"model": name, "params": int(sum(p.size for p in jax.tree.leaves(params))),
          "fwd_bwd_ms": 1e3 * statistics.median(times), "first_call_s": compile_s,
          "tokens_per_s": batch * length / statistics.median(times)}


def main(_):
  rows = [time_model(n, FLAGS.batch, FLAGS.length, FLAGS.width, FLAGS.repeats) for n in FLAGS.models]
  print(f"B={FLAGS.batch} T={FLAGS.length} width={FLAGS.width} on {jax.devices()[0].device_kind}")
  print(f"{'model':22s} {'params':>10s} {'fwd+bwd ms':>11s} {'tokens/s':>10s} {'compile s':>10s}")
  for r in rows:
    print(f"{r['model']:22s} {r['params']:10,d} {r['fwd_bwd_ms']:11.1f} {r['tokens_per_s']:10,.0f} "
          f"{r['first_call_s']:10.1f}")
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump({"batch": FLAGS.batch, "length": FLAGS.length, "width": FLAGS.width,
                 "device": jax.devices()[0].device_kind, "jax": jax.__version__, "rows": rows}, f,
                indent=1)


if __name__ == "__main__":
  app.run(main)
