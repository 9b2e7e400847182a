"""Where the comparison Transformer's training step spends its time, op by op (issue 30).

  python -m benchmarks.transformer_profile                      # T=20,150,500 -> results file
  python -m benchmarks.transformer_profile --lengths=150 --out=/tmp/p.json --d_ff=256

The step is the comparison's (configs/adding.py: sizes of configs/common.py, last-step readout,
MSE, clipping, Adam; `attnlab.train.steps.make_train_step`) at batch 64. Two measurements:
  wall     the step, the forward pass and forward + backward (research.jax_model), interleaved
  threads  a `jax.profiler` trace of a few steps: XLA's CPU runtime records each thunk (one
           fused op, a dot, a while loop) it runs; each thunk is matched by name to its
           instruction in the compiled HLO, whose op_name says which module made it (positions,
           self_attention's projections or core, mlp, ln_*, readout) and whether it belongs to
           the forward pass (jvp), the backward pass (transpose) or the update (optimizer, clip,
           metrics), and whose opcodes say what kind of work it is (products, exp/log, loop
           control, layout copies, other elementwise/reductions).
Times per thread add the two cores' work (thunks run concurrently), so they sum to more than the
wall time; compare shares. A while loop's own time excludes the thunks inside it (its control).
"""
import argparse
import collections
import glob
import json
import os
import re
import statistics
import tempfile
import time

import jax

from attnlab.train import steps
from . import research, timing

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.+?\s+([a-z][\w\-]*)\((.*)$")
_HEADER = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
PRODUCT, TRANSCENDENTAL = {"dot", "convolution"}, {"exponential", "log", "log-plus-one",
                                                     "exponential-minus-one", "tanh", "sine", "cosine"}


def instructions(hlo: str) -> dict:
  """{instruction name: (op_name, kind)} of compiled HLO text; kind from its (fused) opcodes."""
  opcodes, rows, current = collections.defaultdict(set), {}, None
  comp_of, caller = {}, {}  # instruction -> its computation; computation -> calling instruction
  for line in hlo.splitlines():
    head = _HEADER.match(line)
    if head and "=" not in line.split("{")[0]:
      current = head.group(1)
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, opcode, rest = m.groups()
    opcodes[current].add(opcode)
    called = re.findall(r"(?:calls|body|condition|to_apply)=%?([\w.\-]+)", rest)
    op_name = re.search(r'op_name="([^"]*)"', rest)
    rows[name] = (opcode, called, op_name.group(1) if op_name else "")
    comp_of[name] = current
    for c in called:
      caller.setdefault(c, name)

  def named(name, depth=0):  # an instruction without op_name takes its caller's (loop bodies)
    op_name = rows[name][2]
    up = caller.get(comp_of[name])
    return op_name if op_name or up is None or depth > 20 else named(up, depth + 1)

  table = {}
  for name, (opcode, called, op_name) in rows.items():
    ops = {opcode} | (set().union(*(opcodes[c] for c in called)) if opcode == "fusion" else set())
    if opcode in ("while", "call", "conditional"):
      kind = "loop control"
    elif ops & PRODUCT:
      kind = "products"
    elif ops & TRANSCENDENTAL:
      kind = "exp/log"
    elif ops <= {"copy", "transpose", "bitcast", "parameter", "fusion", "tuple",
                 "get-tuple-element", "slice", "dynamic-slice", "dynamic-update-slice",
                 "concatenate", "pad", "reshape", "broadcast"}:
      kind = "layout"
    else:
      kind = "elementwise/reduce"
    table[name] = (named(name), kind)
  return table


def part_of(op_name: str) -> tuple:
  """(pass, part) of an instruction from its op_name (the jax/flax name scopes)."""
  path = op_name.lower()
  phase = "backward" if "transpose(" in path else "forward" if "jvp(" in path else "update"
  if not path:
    return "unattributed", "XLA copies without a source"
  if phase == "update":
    return phase, "optimizer, clip, metrics"
  if "/positions" in path:
    return phase, "sinusoidal positions"
  if re.search(r"self_attention/(query|key|value|query_key_value|out)/", path):
    return phase, "attention projections"
  if "self_attention" in path:
    return phase, "attention core"
  if "/mlp/" in path:
    return phase, "MLP"
  if re.search(r"/(ln_\w+|final_norm)/", path):
    return phase, "layer norm"
  if "embed" in path:
    return phase, "input projection"
  return phase, "readout, loss, other"


def _exclusive(events) -> dict:
  """{name: exclusive ns} of one thread's (name, start, duration) events (children subtracted)."""
  out, stack = collections.Counter(), []
  for name, start, dur in sorted(events, key=lambda e: (e[1], -e[2])):
    while stack and stack[-1][1] <= start:
      stack.pop()
    if stack:
      out[stack[-1][0]] -= dur
    out[name] += dur
    stack.append((name, start + dur))
  return out


def thread_times(fn, table: dict, calls: int = 5) -> dict:
  """{instruction: exclusive thread ms} of `fn` (a blocking callable): each call traced on its own,
  then the median over calls per instruction (a thunk whose thread was descheduled by another job
  on a shared machine counts that wait; the median leaves such calls out)."""
  per_call = []
  for _ in range(calls):
    with tempfile.TemporaryDirectory() as tmp:
      jax.profiler.start_trace(tmp)
      fn()
      jax.profiler.stop_trace()
      path = sorted(glob.glob(os.path.join(tmp, "**", "*.xplane.pb"), recursive=True))[-1]
      data = jax.profiler.ProfileData.from_file(path)
    total = collections.Counter()
    for plane in data.planes:
      for line in plane.lines:
        events = [(e.name, e.start_ns, e.duration_ns) for e in line.events if e.name in table]
        total.update(_exclusive(events))
    per_call.append(total)
  names = set().union(*per_call)
  return {name: statistics.median(c.get(name, 0) for c in per_call) / 1e6 for name in names}


def _compiled(length: int, batch: int, **overrides):
  """(blocking train step, compiled HLO text) of the comparison Transformer."""
  config, spec, model, tx, schedule, data = research.setup("transformer", length, batch, **overrides)
  state = {"s": steps.create_state(model, tx, spec, jax.random.PRNGKey(0), data)}
  compiled = research.run_step(config, model, tx, spec, schedule).lower(state["s"], data).compile()

  def step():
    state["s"], metrics = compiled(state["s"], data)
    jax.block_until_ready(metrics["loss"])

  return step, compiled.as_text()


def profile(length: int, batch: int = 64, repeats: int = 5, top: int = 15, **overrides) -> dict:
  """One row: wall times, the thread-time breakdown of the step at T=`length` and its `top` ops."""
  ours = research.jax_model("transformer", length, batch, **overrides)
  walls = timing.interleaved({p: ours[p] for p in ("train_step", "forward", "forward_backward")},
                             repeats, pause_s=0.05)
  wall = {p: 1e3 * timing.median(t) for p, t in walls.items()}
  step, hlo = _compiled(length, batch, **overrides)
  table = instructions(hlo)
  step()
  times = thread_times(step, table)
  by_part, by_kind, by_part_kind = (collections.Counter() for _ in range(3))
  for name, ms in times.items():
    op_name, kind = table[name]
    phase, part = part_of(op_name)
    by_part[f"{part} ({phase})"] += ms
    by_kind[kind] += ms
    by_part_kind[f"{part} / {kind}"] += ms
  rnd = lambda c: {k: round(v, 2) for k, v in sorted(c.items(), key=lambda kv: -kv[1])}
  top = sorted(times.items(), key=lambda kv: -kv[1])[:top]
  return dict(T=length, batch=batch, overrides=overrides,
              wall_ms=dict(step=wall["train_step"], forward=wall["forward"],
                           forward_backward=wall["forward_backward"],
                           fwd_bwd_over_fwd=wall["forward_backward"] / wall["forward"]),
              thread_ms=round(sum(times.values()), 2), by_part=rnd(by_part), by_kind=rnd(by_kind),
              by_part_kind=rnd(by_part_kind),
              top=[dict(name=n, ms=round(ms, 2), kind=table[n][1], op_name=table[n][0][-120:])
                   for n, ms in top])


def run(lengths=(20, 150, 500), batch: int = 64, repeats: int = 5, d_ffs=(128, 256), top: int = 15,
        log=print) -> dict:
  rows = []
  for length in lengths:
    for d_ff in d_ffs:
      row = profile(length, batch, repeats, top, **({} if d_ff == 128 else {"model.d_ff": d_ff}))
      row["d_ff"] = d_ff
      rows.append(row)
      w = row["wall_ms"]
      log(f"  T={length:4d} d_ff={d_ff}: step {w['step']:7.1f} ms, fwd {w['forward']:6.1f}, "
          f"fwd+bwd {w['forward_backward']:6.1f} ({w['fwd_bwd_over_fwd']:.2f}x fwd); threads "
          f"{row['thread_ms']:.0f} ms: " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                    list(row["by_kind"].items())[:5]))
      for k, v in list(row["by_part"].items())[:8]:
        log(f"      {k:45s} {v:7.1f} ms")
  return dict(rows=rows, batch=batch)


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m benchmarks.transformer_profile")
  p.add_argument("--lengths", default="20,150,500")
  p.add_argument("--d_ff", default="128,256", help="comma-separated d_ff (128: the comparison's)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                               "transformer_profile_cpu.json"))
  p.add_argument("--label", default="", help="stored with the results (e.g. 'before')")
  p.add_argument("--top", type=int, default=15, help="how many of the longest ops each row lists")
  args = p.parse_args(argv)
  result = run(tuple(int(t) for t in args.lengths.split(",")), repeats=args.repeats,
               d_ffs=tuple(int(d) for d in args.d_ff.split(",")), top=args.top)
  result.update(label=args.label, backend=jax.default_backend(), jax=jax.__version__,
                load_average=[round(x, 2) for x in os.getloadavg()],
                command="python -m benchmarks.transformer_profile " + " ".join(
                    f"--{k}={v}" for k, v in vars(args).items() if k != "out"),
                date=time.strftime("%Y-%m-%d %H:%M"))
  existing = {}
  if os.path.exists(args.out):
    with open(args.out) as f:
      existing = json.load(f)
  existing[args.label or "latest"] = result
  with open(args.out, "w") as f:
    json.dump(existing, f, indent=1)
  print(f"results: {args.out} [{args.label or 'latest'}]")
  return result


if __name__ == "__main__":
  main()
