"""The benchmark suite: attnlab's layers against PyTorch and Flax built-ins, long sequences, seed
sweeps, compile times and the input pipeline, on this machine.

  python -m benchmarks.run                    # full shapes, about 15-25 minutes on 2 CPU cores
  python -m benchmarks.run --quick            # tiny shapes: checks that everything runs (~1 min)
  python -m benchmarks.run --sections=lstm,transformer --repeats=9 --json=/tmp/out.json

Sections: peak (f32 matmul rate, for MFU), lstm, gru, transformer (training throughput, compile
time, peak memory, MFU, peers interleaved in one process), research (every comparison model's
full training step at its comparison size on adding, T=100/500/1000, against the same model in
PyTorch, eager and torch.compile), transformer_cpu (the comparison's Transformer exactly, d_ff 128
and 256, T=20/150/500/1000, against PyTorch eager and torch.compile: issue 30), choices (sequential or associative scan, vmapped or
looped or one-by-one seeds: the measurements behind the per-backend defaults), long (peak memory against T, plain vs
chunked attention; LRU at T=65k), vmap (seed sweep), compile (every shipped config, with the
persistent cache, and the input pipeline), loop (the training loop against its own compiled step per
comparison model at T=20 and 100, and a 15-member learning-rate x seed population against 15
single runs). Results go to benchmarks/results/<host>.json (or
--json), and the ratio table and the targets are printed; --markdown writes them as Markdown.
PyTorch peers need the [bench] extra (torch==2.13.0, CPU build); without it they are skipped.
On a GPU the layers run in bfloat16 and attention_impl='fused' uses cuDNN.
"""
import argparse
import json
import os
import platform
import re
import socket
import sys
import time

import jax

from . import (choices, compile_times, layers, long_seq, loop, peers, recurrences, report,
               research, timing, transformer_cpu, vmap_sweep)

SECTIONS = ("peak", "lstm", "gru", "transformer", "research", "transformer_cpu", "choices",
            "recurrences", "long", "vmap", "compile", "loop")
FULL = dict(
    lstm=dict(B=64, T=512, D=256, H=256), gru=dict(B=64, T=512, D=256, H=256),
    transformer=dict(B=16, T=512, d=256, heads=4, d_ff=1024),
    long=dict(lengths=(1024, 4096, 16384), lru_length=65536),
    vmap=dict(num_seeds=8, hidden=64, length=100, num_steps=20), sweep_steps=200,
    compile=dict(pipeline_steps=22, only=None), repeats=7,
    research=dict(lengths=(100, 500, 1000), batch=64, repeats=3, compile_torch=True),
    transformer_cpu=dict(lengths=(20, 150, 500, 1000), d_ffs=(128, 256), batch=64, repeats=5,
                         impls=("dense",), compile_torch=True),
    choices=dict(scan_lengths=(100, 500, 1000), batch=64, repeats=3),
    recurrences=dict(lengths=(100, 1000), batch=64, hidden=128, repeats=5),
    loop=dict(lengths=(20, 100), batch=64, steps={20: 200, 100: 100}, bare_steps=10, repeats=2))
QUICK = dict(
    lstm=dict(B=4, T=16, D=8, H=8), gru=dict(B=4, T=16, D=8, H=8),
    transformer=dict(B=2, T=16, d=16, heads=2, d_ff=32),
    long=dict(lengths=(64,), lru_length=256, d_model=32, lru_d_model=16, impls=("chunked",)),
    vmap=dict(num_seeds=2, hidden=8, length=10, num_steps=2), sweep_steps=2,
    compile=dict(pipeline_steps=4, only=("adding",)), repeats=2,
    research=dict(lengths=(8,), batch=4, repeats=2, words=("lstm",), compile_torch=False),
    transformer_cpu=dict(lengths=(8,), d_ffs=(128,), batch=4, repeats=1, impls=("dense",),
                         compile_torch=False),
    choices=dict(scan_lengths=(8,), seed_words=("lstm",), seed_lengths=(8,), num_seeds=2, batch=4,
                 repeats=2, attention_lengths=(8,), attention_impls=("plain", "chunked"),
                 microbatch_cases=(("transformer", 8),), microbatch_ks=(1, 2)),
    recurrences=dict(lengths=(8,), batch=4, hidden=8, repeats=2, s6_lengths=(8,)),
    loop=dict(lengths=(8,), words=("lstm",), batch=4, steps={8: 6}, short_steps=3, bare_steps=2,
              repeats=1, population_sizes=dict(length=8, batch=4, steps=4, lr_factors=(1.0, 2.0),
                                               seeds=(0, 1))))


def host() -> str:
  return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def machine() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  try:
    with open("/proc/meminfo") as f:
      mem = int(f.readline().split()[1]) / 2**20
  except OSError:
    mem = float("nan")
  return dict(host=host(), cpu=cpu, cores=os.cpu_count(), memory_gib=mem,
              device=f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
              load_average=[round(x, 2) for x in os.getloadavg()])


def versions() -> dict:
  import flax
  import optax
  out = dict(python=platform.python_version(), jax=jax.__version__, jaxlib=jax.lib.__version__,
             flax=flax.__version__, optax=optax.__version__)
  if peers.torch_available():
    out["torch"] = peers.torch.__version__
    out["torch_threads"] = peers.torch.get_num_threads()
  return out


def parse(argv):
  p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats")
  p.add_argument("--json", default=None, help="results file (default benchmarks/results/<host>.json)")
  p.add_argument("--markdown", default=None, help="also write the tables as Markdown here")
  p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
  p.add_argument("--repeats", type=int, default=None, help="timed rounds per layer and per recurrences candidate")
  p.add_argument("--no-memory", action="store_true", help="skip per-layer peak-memory children")
  p.add_argument("--dtype", default=None, help="layer compute dtype (default f32; bf16 on GPU)")
  p.add_argument("--lengths", default=None,
                 help="comma-separated T for the research and choices sections (default 100,500,1000)")
  p.add_argument("--choices", default=",".join(choices.PARTS),
                 help=f"choices: comma-separated subset of {','.join(choices.PARTS)}")
  p.add_argument("--no-torch-compile", action="store_true",
                 help="research: skip the torch.compile variant (minutes of compiling per model)")
  p.add_argument("--loop_models", default=None,
                 help=f"loop: comma-separated subset of {','.join(loop.MODELS)}")
  p.add_argument("--loop_lengths", default=None, help="loop: comma-separated T (default 20,100)")
  p.add_argument("--loop_population", default="on", choices=("on", "off"),
                 help="loop: also time the 15-member population (default on)")
  return p.parse_args(argv)


def _lengths(flag: str, text: str, least: int, bound: str, example: str = "") -> tuple:
  """--flag's comma-separated integers, each >= least; else a one-line SystemExit."""
  try:
    lengths = tuple(int(t) for t in text.split(","))
  except ValueError:
    raise SystemExit(f"--{flag}={text!r}: expected comma-separated integers{example}")
  if min(lengths) < least:
    raise SystemExit(f"--{flag}={text!r}: lengths must be {bound}")
  return lengths


def main(argv=None) -> dict:
  args = parse(sys.argv[1:] if argv is None else argv)
  sizes = QUICK if args.quick else FULL
  sections = [s for s in args.sections.split(",") if s]
  unknown = sorted(set(sections) - set(SECTIONS))
  if unknown:
    raise SystemExit(f"unknown sections {unknown}; valid: {', '.join(SECTIONS)}")
  repeats = args.repeats or sizes["repeats"]
  sizes = {k: dict(v) if isinstance(v, dict) else v for k, v in sizes.items()}
  if args.lengths:
    lengths = _lengths("lengths", args.lengths, 1, "positive", ", e.g. 100,500")
    sizes["research"]["lengths"] = lengths
    sizes["transformer_cpu"]["lengths"] = lengths
    sizes["choices"].update(scan_lengths=lengths, attention_lengths=lengths, seed_lengths=lengths)
  if args.no_torch_compile:
    sizes["research"]["compile_torch"] = False
    sizes["transformer_cpu"]["compile_torch"] = False
  parts = tuple(c for c in args.choices.split(",") if c)
  if set(parts) - set(choices.PARTS):
    raise SystemExit(f"--choices={args.choices!r}: unknown parts {sorted(set(parts) - set(choices.PARTS))}; "
                     f"valid: {', '.join(choices.PARTS)}")
  sizes["choices"]["parts"] = parts
  if args.loop_models:
    words = tuple(w for w in args.loop_models.split(",") if w)
    if not words or set(words) - set(loop.MODELS):
      raise SystemExit(f"--loop_models={args.loop_models!r}: unknown models "
                       f"{sorted(set(words) - set(loop.MODELS))}; valid: {', '.join(loop.MODELS)}")
    sizes["loop"]["words"] = words
  if args.loop_lengths:
    sizes["loop"]["lengths"] = _lengths("loop_lengths", args.loop_lengths, 2, "at least 2")
  sizes["loop"]["with_population"] = args.loop_population == "on"
  dtype = args.dtype or ("bfloat16" if jax.default_backend() == "gpu" else "float32")
  path = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"{host()}{'_quick' if args.quick else ''}.json")
  results = dict(machine=machine(), versions=versions(), quick=args.quick, dtype=dtype,
                 command="python -m benchmarks.run " + " ".join(
                     sys.argv[1:] if argv is None else argv),
                 started=time.strftime("%Y-%m-%d %H:%M:%S"))
  print(f"{results['machine']['cpu']} x{results['machine']['cores']}, "
        f"{results['machine']['device']}; " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
  if not peers.torch_available():
    print("PyTorch is not installed: its peers are skipped (pip install -e '.[bench]')")

  def save():
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
      json.dump(results, f, indent=1, default=float)

  peak_sizes = (256, 512) if args.quick else (1024, 2048, 3072)
  results["peak"] = timing.matmul_peak(peak_sizes, repeats=3 if args.quick else 5)
  print(f"[peak] f32 matmul: {results['peak']['gflops']:.1f} GFLOP/s (n={results['peak']['n']})")
  for name in sections:
    if name == "peak":
      continue
    start = time.time()
    print(f"[{name}]")
    if name in ("lstm", "gru", "transformer"):
      results[name] = layers.run(name, sizes[name], repeats, results["peak"]["gflops"],
                                 dtype=dtype, memory=not args.no_memory and not args.quick)
    elif name == "research":
      results[name] = research.run(**sizes["research"])
    elif name == "transformer_cpu":
      results[name] = transformer_cpu.run(**sizes["transformer_cpu"])
    elif name == "choices":
      results[name] = choices.run(**sizes["choices"])
    elif name == "recurrences":
      results[name] = recurrences.run(**{**sizes["recurrences"],
                                         **({"repeats": args.repeats} if args.repeats else {})})
    elif name == "long":
      impls = {} if args.quick or jax.default_backend() != "gpu" else dict(
          impls=("plain", "chunked", "fused"))  # fused: cuDNN's flash attention on a GPU
      results[name] = long_seq.run(**{**sizes["long"], **impls})
    elif name == "vmap":
      results[name] = vmap_sweep.run(**sizes["vmap"], repeats=max(2, repeats // 2))
      shape = {k: sizes["vmap"][k] for k in ("num_seeds", "hidden", "length")}
      results[name]["end_to_end"] = vmap_sweep.end_to_end(**shape, num_steps=sizes["sweep_steps"])
    elif name == "compile":
      results[name] = compile_times.run(**sizes["compile"])
    elif name == "loop":
      repeats_ = {"repeats": args.repeats} if args.repeats else {}
      results[name] = loop.run(**{**sizes["loop"], **repeats_})
    print(f"  ({time.time() - start:.0f} s)")
    save()
  if "peak" in sections and not args.quick:  # the machine's rate again, after the run
    again = timing.matmul_peak(peak_sizes, repeats=5)
    results["peak_after"] = again
    results["peak"] = max(results["peak"], again, key=lambda p: p["gflops"])
  report.print_tables(results)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(report.markdown(results))
  save()
  print(f"\nresults: {path}")
  return results


if __name__ == "__main__":
  main()
