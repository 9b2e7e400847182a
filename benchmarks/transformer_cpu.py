"""The comparison's Transformer training step against PyTorch's, on this machine (issue 30).

  python -m benchmarks.run --sections=transformer_cpu          # T=20,150,500,1000; d_ff 128, 256
  python -m benchmarks.transformer_cpu --lengths=150 --repeats=5 --impls=dense,chunked

The model is the comparison's exactly (configs/adding.py with configs/common.py's sizes: 2 pre-LN
layers, d=64, 4 heads, d_ff=128, sinusoidal positions, last-step readout, MSE, clipping at 1.0,
Adam), run by attnlab's own train step (`research.jax_model`), plus the same model with d_ff=256
(the issue's benchmark). The peer is `research`'s PyTorch model (nn.TransformerEncoderLayer,
norm_first, batch_first) with the same d_ff, eager and `torch.compile`d (where inductor compiles on
this machine; else the reason is recorded). Each row times, interleaved in one process, the full
step, the forward pass and forward + backward of every candidate, and gives medians (and minima:
on a shared machine the minimum is the least disturbed round) and ratios
(PyTorch's step / attnlab's: > 1 means attnlab is faster). PyTorch runs with all cores and with one
thread (its OpenMP threads spin-wait; on a loaded machine one thread is often much faster).
`impls` adds attnlab candidates with model.attention_impl set (the measurement behind `ATTENTION_BY_BACKEND`).
Each candidate's step is also timed by the process's CPU time (all threads, `resource.getrusage`;
`train_step_cpu_ms`, and `cpu_ratio_<peer>` = the peer's CPU ms / attnlab's): on a loaded machine
the steadier measure of the work a step does (PyTorch's spinning OpenMP threads count in it).
"""
import argparse
import json
import os
import time

import jax

from . import peers, research, timing
from .transformer_before_after import measure

PARTS = ("train_step", "forward", "forward_backward")


def _torch(params, batch, d_ff: int, compiled: bool) -> dict:
  peers.torch.manual_seed(0)
  module = research._torch_classes()[0](d_ff=d_ff)
  return research.torch_step(module, batch, "transformer", compiled=compiled)


def row(length: int, d_ff: int, batch: int = 64, repeats: int = 5, impls=(),
        compile_torch: bool = True, threads=None, log=print) -> dict:
  """One (T, d_ff): every candidate's step, forward and forward + backward, interleaved."""
  overrides = {} if d_ff == 128 else {"model.d_ff": d_ff}
  ours = research.jax_model("transformer", length, batch, **overrides)
  cands = {"attnlab": ours}
  for impl in impls:
    cands[f"attnlab {impl}"] = research.jax_model("transformer", length, batch,
                                                  **overrides, **{"model.attention_impl": impl})
  errors = {}
  if peers.torch_available():
    threads = threads or peers.torch.get_num_threads()
    cands["torch"] = research._threads(_torch(ours["params"], ours["batch"], d_ff, False), threads)
    if threads > 1:  # OpenMP threads spin: on a shared machine one thread can be much faster
      cands["torch 1 thread"] = research._threads(_torch(ours["params"], ours["batch"], d_ff, False), 1)
    if compile_torch:
      try:
        cands["torch.compile"] = research._threads(_torch(ours["params"], ours["batch"], d_ff, True),
                                                   threads)
      except Exception as e:  # no C++ toolchain for inductor, or a graph it cannot handle
        errors["torch.compile"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        log(f"  torch.compile T={length} d_ff={d_ff}: failed ({errors['torch.compile']})")
  fns = {f"{n}/{p}": c[p] for n, c in cands.items() for p in PARTS}
  times = timing.interleaved(fns, repeats, pause_s=research.PAUSE_S)
  cpu = measure({n: c["train_step"] for n, c in cands.items()}, 1, repeats)
  out = dict(T=length, d_ff=d_ff, batch=batch, repeats=repeats, errors=errors,
             load_average=[round(x, 2) for x in os.getloadavg()])
  for name, c in cands.items():
    out[name] = dict(compile_s=c["compile_s"], n_params=c["n_params"],
                     **{f"{p}_ms": 1e3 * timing.median(times[f"{name}/{p}"]) for p in PARTS},
                     **{f"{p}_min_ms": 1e3 * min(times[f"{name}/{p}"]) for p in PARTS})
    out[name]["fwd_bwd_over_fwd"] = out[name]["forward_backward_ms"] / out[name]["forward_ms"]
    out[name]["train_step_cpu_ms"] = timing.median(cpu[name]["cpu_ms"])
    out[name]["train_step_cpu_min_ms"] = min(cpu[name]["cpu_ms"])
  for peer in ("torch", "torch 1 thread", "torch.compile"):
    if peer in cands:
      for name in cands:
        if name.startswith("attnlab"):
          out[name][f"ratio_{peer}"] = out[peer]["train_step_ms"] / out[name]["train_step_ms"]
          out[name][f"ratio_{peer}_min"] = out[peer]["train_step_min_ms"] / out[name]["train_step_min_ms"]
          cpu_ratio = out[peer]["train_step_cpu_ms"] / out[name]["train_step_cpu_ms"]
          out[name][f"cpu_ratio_{peer}"] = cpu_ratio
  line = f"  T={length:5d} d_ff={d_ff}:"
  for name in cands:
    line += (f"  {name} {out[name]['train_step_ms']:7.1f} ms "
             f"({out[name]['train_step_cpu_ms']:.0f} CPU)")
  a = out["attnlab"]
  for peer in ("torch", "torch 1 thread"):
    if f"ratio_{peer}" in a:
      line += (f"  vs {peer} {a[f'ratio_{peer}']:.2f}x (min {a[f'ratio_{peer}_min']:.2f}x, "
               f"CPU time {a[f'cpu_ratio_{peer}']:.2f}x)")
  log(line + f"; attnlab fwd+bwd/fwd {a['fwd_bwd_over_fwd']:.2f}")
  return out


def run(lengths=(20, 150, 500, 1000), d_ffs=(128, 256), batch: int = 64, repeats: int = 5,
        impls=(), compile_torch: bool = True, log=print) -> dict:
  threads = peers.torch.get_num_threads() if peers.torch_available() else None  # before any row
  rows = [row(t, d, batch, repeats, impls, compile_torch, threads, log)  # sets it per call
          for t in lengths for d in d_ffs]
  return dict(rows=rows, batch=batch, backend=jax.default_backend(), torch_threads=threads)


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m benchmarks.transformer_cpu")
  p.add_argument("--lengths", default="20,150,500,1000")
  p.add_argument("--d_ff", default="128,256")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--impls", default="", help="extra attnlab candidates by attention_impl")
  p.add_argument("--no-torch-compile", action="store_true")
  p.add_argument("--note", default="", help="stored with the results (e.g. the machine's state)")
  p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                               "research_transformer_cpu.json"))
  args = p.parse_args(argv)
  load_before = [round(x, 2) for x in os.getloadavg()]
  result = run(tuple(int(t) for t in args.lengths.split(",")),
               tuple(int(d) for d in args.d_ff.split(",")), repeats=args.repeats,
               impls=tuple(i for i in args.impls.split(",") if i),
               compile_torch=not args.no_torch_compile)
  result.update(command="python -m benchmarks.transformer_cpu " + " ".join(argv or []),
                note=args.note, cpus=os.cpu_count(), load_average_start=load_before,
                load_average_end=[round(x, 2) for x in os.getloadavg()],
                jax=jax.__version__, date=time.strftime("%Y-%m-%d %H:%M"))
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"results: {args.out}")
  return result


if __name__ == "__main__":
  main(__import__("sys").argv[1:])
