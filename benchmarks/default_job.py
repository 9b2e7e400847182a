"""Where the default job's time goes: XLA compilations per comparison part and per kind of program.

  python -m benchmarks.default_job                      # cold (empty cache) then warm, -> JSON
  python -m benchmarks.default_job --cache=DIR --label=warm --json=...   # one pass, this cache

Runs the default job (configs/default.py, `python -m experiments.main`) in a fresh temporary
workdir, in this process, once per pass: 'cold' with an empty persistent compilation cache (a new
temporary directory), then 'warm' with the cache the cold pass filled. jax.monitoring's events
(backend compile, jaxpr trace, lowering to MLIR, persistent-cache hits) are attributed to

  part  the comparison part running (learning_cost, seq2seq, gradients, attention, generalisation;
        'report' for what follows them), by wrapping attnlab.comparison's part functions;
  kind  the kind of program: 'train K=<n>' (a dispatch's chunk of n steps), 'batch draw K=<n>'
        (n training batches drawn on the device), 'train fused' (a dispatch of any length as one
        program drawing its batches inside), 'eval' (validation), 'final test' (the final_*
        metrics), 'hook' (gradient flow logged at evaluations), 'init', else the jitted function's
        name.

For each (part, kind): programs compiled (cache misses), loaded from the cache (hits), and seconds
spent compiling (backend_s: XLA, or reading the cache on a hit), tracing and lowering. The pass's
wall time and its total are beside them. Written to benchmarks/results/default_job_profile.json.
"""
import argparse
import collections
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import jax

EVENTS = {"/jax/core/compile/backend_compile_duration": "backend_s",
          "/jax/core/compile/jaxpr_trace_duration": "trace_s",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s"}
HIT = "/jax/compilation_cache/cache_hits"
PARTS = {"run_learning_cost": "learning_cost", "run_seq2seq": "seq2seq", "run_clipping": "clipping",
         "gradient_flow": "gradients", "attention_maps": "attention",
         "run_generalisation": "generalisation", "run_long_range": "long_range"}


class Profile:
  """Compile events by (part, kind); the current part and kind are set by `Profile.within`."""

  def __init__(self):
    self.rows = collections.defaultdict(lambda: collections.Counter())
    self._where = threading.local()
    self._hit = False

  def where(self):
    return getattr(self._where, "part", "setup"), getattr(self._where, "kind", None)

  @contextlib.contextmanager
  def within(self, part=None, kind=None):
    """Events inside are attributed to `part` and `kind` (an outer kind wins over an inner one)."""
    old = self.where()
    self._where.part = part or old[0]
    self._where.kind = old[1] or kind
    try:
      yield
    finally:
      self._where.part, self._where.kind = old

  def on_duration(self, event, duration, fun_name=None, **kwargs):
    if event not in EVENTS:
      return
    part, kind = self.where()
    row = self.rows[(part, kind or f"fn {fun_name}")]
    row[EVENTS[event]] += duration
    if event == "/jax/core/compile/backend_compile_duration":
      row["hits" if self._hit else "compiles"] += 1
      self._hit = False

  def on_event(self, event, **kwargs):
    if event == HIT:
      self._hit = True

  def table(self) -> list:
    out = [{"part": p, "kind": k, **{n: round(v, 3) if isinstance(v, float) else v
                                      for n, v in sorted(c.items())}}
           for (p, k), c in self.rows.items()]
    return sorted(out, key=lambda r: -(r.get("backend_s", 0) + r.get("trace_s", 0)
                                       + r.get("lower_s", 0)))


def _wrap(obj, name, around):
  original = getattr(obj, name)

  @functools.wraps(original)
  def wrapped(*args, **kwargs):
    with around(*args, **kwargs):
      return original(*args, **kwargs)

  setattr(obj, name, wrapped)


def _tag_train_programs(par, profile: Profile):
  """Wraps par's train_steps (K steps) and train_step (one) so their compilations get a kind."""
  for name in ("train_steps", "train_step"):
    fn = getattr(par, name, None)
    if fn is None or getattr(fn, "_profiled", False):
      continue

    def tagged(state, batches, *rest, _fn=fn, _name=name):
      k = jax.tree_util.tree_leaves(batches)[0].shape[0] if _name == "train_steps" else 1
      with profile.within(kind=f"train K={k}"):
        return _fn(state, batches, *rest)

    tagged._profiled = True
    setattr(par, name, tagged)


def instrument(profile: Profile):
  """Wraps the part functions and the trainer's program call sites so events get a part and kind
  (those of the code imported: older versions lack some)."""
  from attnlab import comparison
  from attnlab.train import parallel, trainer
  for fn, part in PARTS.items():
    if hasattr(comparison, fn):
      _wrap(comparison, fn, lambda *a, _p=part, **k: profile.within(part=_p))
  _wrap(trainer, "evaluate", lambda *a, **k: profile.within(kind="eval"))
  _wrap(trainer, "_final_results", lambda *a, **k: profile.within(kind="final test"))
  _wrap(trainer._Run, "run_hooks", lambda *a, **k: profile.within(kind="hook"))
  try:
    from attnlab.train import dispatch
  except ImportError:  # before the K-step loop: one step per dispatch
    dispatch = None
  if hasattr(dispatch, "DeviceBatches"):
    _wrap(dispatch.DeviceBatches, "next_k",
          lambda self, k: profile.within(kind=f"batch draw K={k}"))
  if hasattr(dispatch, "DeviceSteps"):  # one program per run, whatever the dispatch's length
    _wrap(dispatch.DeviceSteps, "train", lambda *a, **k: profile.within(kind="train fused"))
  if hasattr(dispatch, "DeviceStepsUntil"):  # hochreiter1997's programs that end themselves
    _wrap(dispatch.DeviceStepsUntil, "train", lambda *a, **k: profile.within(kind="train fused"))
  init, init_state = parallel.Parallel.__init__, parallel.Parallel.init_state

  def patched_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    _tag_train_programs(self, profile)

  def patched_init_state(self, *args, **kwargs):
    with profile.within(kind="init"):
      out = init_state(self, *args, **kwargs)
    _tag_train_programs(self, profile)  # the mesh path builds its train programs here
    return out

  parallel.Parallel.__init__ = patched_init
  parallel.Parallel.init_state = patched_init_state


def run_pass(label: str, cache: str, config: str = "default") -> dict:
  """The default job (or configs/<config>.py, 'FILE:ARG') once in a fresh workdir with the
  persistent cache in `cache`."""
  import importlib
  from attnlab import compile_cache, experiment
  profile = Profile()
  jax.monitoring.register_event_duration_secs_listener(profile.on_duration)
  jax.monitoring.register_event_listener(profile.on_event)
  instrument(profile)
  compile_cache.enable(cache)
  workdir = tempfile.mkdtemp(prefix="attnlab-default-job-")
  name, _, arg = config.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config(arg or None)
  load = os.getloadavg()[0]
  t0, error = time.time(), None
  try:
    code = experiment.run(config, workdir)
    error = f"exit code {code}" if code else None
  except Exception as e:  # the profile so far is still written
    error = f"{type(e).__name__}: {e}"
  wall = time.time() - t0
  shutil.rmtree(workdir, ignore_errors=True)
  rows = profile.table()
  total = collections.Counter()
  for r in rows:
    total.update({k: v for k, v in r.items() if k not in ("part", "kind")})
  by = lambda key: {n: round(sum(r.get("backend_s", 0) + r.get("trace_s", 0) + r.get("lower_s", 0)
                                 for r in rows if r[key] == n), 2)
                    for n in sorted({r[key] for r in rows})}
  return {"label": label, "error": error, "wall_s": round(wall, 1), "load_avg_1m_at_start": load,
          "total": {k: round(v, 2) if isinstance(v, float) else v for k, v in total.items()},
          "compile_s_by_part": by("part"), "rows": rows}


def by_kind(rows: list) -> dict:
  """{kind: [compiles, cache hits, seconds of trace + lower + compile]}, every function that is not
  a train, batch, eval, final test, hook or init program counted as 'other'."""
  out = collections.defaultdict(lambda: [0, 0, 0.0])
  for r in rows:
    kind = "other" if r["kind"].startswith("fn ") else r["kind"]
    out[kind][0] += r.get("compiles", 0)
    out[kind][1] += r.get("hits", 0)
    out[kind][2] += r.get("backend_s", 0) + r.get("trace_s", 0) + r.get("lower_s", 0)
  return {k: [c, h, round(s, 1)] for k, (c, h, s) in sorted(out.items(), key=lambda x: -x[1][2])}


def merge(paths: list, out: str, new: str = "after", profile: str = None):
  """One document of the passes in `paths` (labels '<cold|warm>_<code>'): per code its cold and
  warm wall times, and the speed-up of code `new` over each other code (their wall / its wall)."""
  passes = []
  for path in paths:
    with open(path) as f:
      passes += json.load(f)["passes"]
  walls = collections.defaultdict(dict)
  for r in passes:
    cache, _, code = r["label"].partition("_")
    walls[code][cache] = r["wall_s"]
  doc = {"what": "the default job (configs/default.py) end to end, each code from an empty "
                 "compilation cache (cold) and then with the cache it filled (warm); "
                 "benchmarks/default_job.py", "cores": os.cpu_count(), "jax": jax.__version__,
         "wall_s": dict(walls),
         "load_avg_1m_at_start": {r["label"]: round(r["load_avg_1m_at_start"], 2) for r in passes},
         f"speedup_of_{new}": {base: {cache: round(w[cache] / walls[new][cache], 3)
                                      for cache in w if cache in walls.get(new, {})}
                               for base, w in walls.items() if base != new},
         "passes": [{k: v for k, v in r.items() if k != "rows"} for r in passes]}
  if profile:
    with open(profile, "w") as f:
      json.dump({"what": __doc__.splitlines()[0] + " (benchmarks/default_job.py)",
                 "cores": os.cpu_count(), "jax": jax.__version__,
                 "by_kind": {r["label"]: by_kind(r["rows"]) for r in passes},
                 "passes": passes}, f, indent=1)
  with open(out, "w") as f:
    json.dump(doc, f, indent=1)
  print(json.dumps({k: doc[k] for k in doc if k != "passes"}, indent=1))
  return doc


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--cache", help="one pass with this cache directory (default: cold then warm)")
  p.add_argument("--label", default="pass")
  p.add_argument("--merge", nargs="*", help="pass JSON files (of --cache runs) to merge into "
                 "--json, with each code's cold and warm wall times and their ratios")
  p.add_argument("--profile", help="with --merge: also every pass's rows, by kind, here")
  p.add_argument("--config", default="default", help="configs/<name>.py[:arg] (tests: a tiny one)")
  p.add_argument("--json", default="benchmarks/results/default_job_profile.json")
  args = p.parse_args(argv)
  if args.merge:
    return merge(args.merge, args.json, profile=args.profile)
  if args.cache:
    result = [run_pass(args.label, args.cache, args.config)]
  else:  # each pass in its own process: a process keeps compiled programs in memory
    from benchmarks import subproc  # noqa: F401 (the child runs this module)
    import subprocess
    cache, result = tempfile.mkdtemp(prefix="attnlab-default-job-cache-"), []
    try:
      for label in ("cold", "warm"):
        out = tempfile.mktemp(suffix=".json")
        subprocess.run([sys.executable, "-m", "benchmarks.default_job", f"--cache={cache}",
                        f"--label={label}", f"--json={out}"], check=True)
        with open(out) as f:
          result += json.load(f)["passes"]
    finally:
      shutil.rmtree(cache, ignore_errors=True)
  doc = {"what": "benchmarks/default_job.py: the default job's compilations by part and kind",
         "cores": os.cpu_count(), "jax": jax.__version__, "passes": result}
  with open(args.json, "w") as f:
    json.dump(doc, f, indent=1)
  for r in result:
    print(f"{r['label']}: wall {r['wall_s']} s, compile {r['total']}, by part "
          f"{r['compile_s_by_part']}")


if __name__ == "__main__":
  main()
