"""Training throughput of single layers, attnlab's against Flax's and PyTorch's, side by side.

For each section (lstm, gru, transformer) every layer of `peers` trains on the same input in the
same process: one compile (JAX; its seconds are reported), one warm-up step, then `repeats`
interleaved rounds (`timing.interleaved`); the reported time is the median round. Throughput is
B*T tokens per training step (forward, backward, Adam). MFU uses `flops` and the matmul peak
measured in the same run. With `memory`, each layer also trains two steps alone in a child process
(`subproc.run_child`) that reports its peak RSS and how far it rose above the RSS just before the
first step (for JAX: compiled program, parameters, optimizer state, activations and gradients).
"""
import jax
import jax.numpy as jnp

from . import flops, peers, subproc, timing


def build(section: str, shape: dict, dtype, torch_peers: bool = True) -> dict:
  if section == "lstm":
    return peers.lstm_layers(shape["B"], shape["T"], shape["D"], shape["H"], dtype, torch_peers)
  if section == "gru":
    return peers.gru_layers(shape["B"], shape["T"], shape["D"], shape["H"], dtype, torch_peers)
  if section == "transformer":
    return peers.transformer_layers(shape["B"], shape["T"], shape["d"], shape["heads"],
                                    shape["d_ff"], dtype, torch_peers=torch_peers)
  raise ValueError(f"unknown layer section {section!r}")


def train_flops(section: str, shape: dict) -> float:
  if section == "lstm":
    return flops.lstm(shape["B"], shape["T"], shape["D"], shape["H"])
  if section == "gru":
    return flops.gru(shape["B"], shape["T"], shape["D"], shape["H"])
  return flops.encoder_layer(shape["B"], shape["T"], shape["d"], shape["d_ff"])


def run(section: str, shape: dict, repeats: int, peak_gflops: float, *, dtype="float32",
        memory: bool = False, log=print) -> dict:
  layers = build(section, shape, jnp.dtype(dtype))
  step_flops = train_flops(section, shape)
  tokens = shape["B"] * shape["T"]
  compile_s = {}
  for name, layer in layers.items():
    compile_s[name] = layer.compile() if layer.compile else None
  times = timing.interleaved({n: l.train_step for n, l in layers.items()}, repeats)
  rows = {}
  for name, ts in times.items():
    t = timing.median(ts)
    rows[name] = dict(framework=layers[name].framework, step_s=t, spread=timing.spread(ts),
                      tokens_per_s=tokens / t, mfu=flops.mfu(step_flops, t, peak_gflops),
                      compile_s=compile_s[name], times_s=ts)
    log(f"  {section:12s} {name:38s} {1e3 * t:9.1f} ms  {tokens / t:11,.0f} tok/s  "
        f"MFU {100 * rows[name]['mfu']:5.1f}%  spread {100 * rows[name]['spread']:4.0f}%")
  if memory:
    for name in rows:
      child = subproc.run_child(dict(kind="layer", section=section, shape=shape, layer=name,
                                     dtype=dtype))
      rows[name]["memory"] = {k: child.get(k) for k in (
          "status", "peak_rss_bytes", "rss_before_step_bytes", "device_peak_bytes")}
      rise = (child.get("peak_rss_bytes") or 0) - (child.get("rss_before_step_bytes") or 0)
      rows[name]["memory"]["step_rss_rise_bytes"] = rise
      log(f"  {section:12s} {name:38s} peak RSS {child['peak_rss_bytes'] / 2**20:8.0f} MiB "
          f"(+{rise / 2**20:.0f} MiB for training)  {child['status']}")
  return dict(shape=shape, dtype=dtype, train_flops=step_flops, tokens_per_step=tokens,
              device=jax.devices()[0].device_kind, rows=rows)


def child(task: dict) -> dict:
  """In a child process: two training steps of one layer; memory before and after."""
  name = task["layer"]
  layers = build(task["section"], task["shape"], jnp.dtype(task["dtype"]),
                 torch_peers=name.startswith("torch"))
  layer = layers[name]
  del layers
  before = subproc.vm_status()["VmRSS"]
  if layer.compile:
    layer.compile()
  layer.train_step()
  layer.train_step()
  stats = jax.devices()[0].memory_stats() or {}
  return dict(rss_before_step_bytes=before, device_peak_bytes=stats.get("peak_bytes_in_use"))
