"""Long sequences: peak memory of a Transformer training step against T, plain vs chunked attention,
and an LRU training step at very long T.

Each point trains alone in a child process (`subproc.run_child`, memory-capped): the registry
'transformer' (1 layer, d=256, 4 heads, d_ff=1024, causal, B=1) on token inputs, loss mean(y^2)
over per-step outputs, Adam; and the registry 'lru' (d=128, N=128, 1 layer, B=1). Reported: compile
seconds, the faster of two steps after the first, the peak RSS of the whole process and its
rise over the RSS before the first step. A point that passes the memory cap is killed and reported
as such.
"""
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax

from attnlab import models
from . import subproc

VOCAB = 16


def model_config(name: str, impl: str = "plain", d_model: int = 256) -> ml_collections.ConfigDict:
  cfg = models.default_config(name)
  cfg.update(vocab_size=VOCAB, num_outputs=VOCAB, output="step")
  if name == "transformer":
    cfg.update(d_model=d_model, num_heads=4, d_ff=4 * d_model, num_layers=1, causal=True,
               attention_impl=impl)
  else:
    cfg.update(d_model=d_model, state_size=d_model)
  return cfg


def child(task: dict) -> dict:
  """In a child process: compile and run three training steps of one (model, impl, T) point."""
  cfg = model_config(task["model"], task.get("impl", "plain"), task["d_model"])
  model = models.build(cfg)
  tokens = jax.random.randint(jax.random.PRNGKey(0), (task["B"], task["T"]), 1, VOCAB)
  params = jax.jit(model.init)(jax.random.PRNGKey(1), tokens[:, :8])["params"]
  tx = optax.adam(1e-3)

  def step(params, opt_state, tokens):
    loss, grads = jax.value_and_grad(
        lambda p: jnp.mean(model.apply({"params": p}, tokens) ** 2))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  before = subproc.vm_status()["VmRSS"]
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, tokens).compile()
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(3):
    start = time.perf_counter()
    params, opt_state, loss = compiled(params, opt_state, tokens)
    jax.block_until_ready(loss)
    times.append(time.perf_counter() - start)
  stats = jax.devices()[0].memory_stats() or {}
  return dict(compile_s=compile_s, step_s=sorted(times[1:])[0] if len(times) > 2 else times[-1],
              first_step_s=times[0], rss_before_step_bytes=before, loss=float(loss),
              device_peak_bytes=stats.get("peak_bytes_in_use"))


def run(lengths, lru_length: int, d_model: int = 256, lru_d_model: int = 128,
        impls=("plain", "chunked"), log=print) -> dict:
  points = []
  tasks = [dict(kind="long", model="transformer", impl=impl, T=t, B=1, d_model=d_model)
           for t in lengths for impl in impls]
  tasks.append(dict(kind="long", model="lru", T=lru_length, B=1, d_model=lru_d_model))
  for task in tasks:
    result = subproc.run_child(task)
    rise = result["peak_rss_bytes"] - (result.get("rss_before_step_bytes") or 0)
    point = dict(task, **{k: result.get(k) for k in ("status", "compile_s", "step_s", "first_step_s",
                                                      "peak_rss_bytes", "device_peak_bytes")},
                 step_rss_rise_bytes=rise if result.get("rss_before_step_bytes") else None)
    points.append(point)
    label = f"{task['model']} {task.get('impl', ''):8s} T={task['T']:6d}"
    if result["status"] == "ok":
      log(f"  {label}  step {1e3 * point['step_s']:8.1f} ms  compile {point['compile_s']:5.1f} s  "
          f"peak RSS {point['peak_rss_bytes'] / 2**30:6.2f} GiB (+{rise / 2**30:.2f} GiB)")
    else:
      log(f"  {label}  {result['status']}  (peak RSS {point['peak_rss_bytes'] / 2**30:.2f} GiB)")
  return dict(points=points, mem_cap_bytes=subproc.default_mem_cap())
