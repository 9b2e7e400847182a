"""One command that checks attnlab on an accelerator and records what it measured (<= 8 minutes).

  python -m benchmarks.device_check                     # every step, results in --out
  python -m benchmarks.device_check --dry-run           # lists the steps and their commands
  python -m benchmarks.device_check --steps=devices,tests --budget=300

Steps, each in its own process with its own time limit (a step that fails or runs out of time is
recorded and the next one runs):
  devices     JAX's devices and versions, the card (nvidia-smi), a bf16 and an f32 matmul rate
  tests       the accelerator-relevant tests: models, attention (attention_impl='fused' uses cuDNN
              on a GPU), chunked attention, LSTM custom VJP in bf16, recurrent ops, training
              (bf16 compute, resume) and vmapped seeds, run with pytest-xdist
  checkpoint  trains a small LSTM on adding in bf16 on the accelerator (the jit + Mesh path over the
              local devices), then restores it with JAX_PLATFORMS=cpu and checks that the CPU
              computes the same outputs as the accelerator
  benchmarks  the benchmark suite's accelerator sections (lstm, gru, transformer layers against
              PyTorch on the same device, long sequences), `benchmarks.run --sections=...`
  profile     the comparison Transformer's training step, op by op (benchmarks.transformer_profile,
              T=150 and 500): wall times of step, forward and forward + backward, and where the
              trace matches thunks to HLO, the breakdown by module and kind of work
  comparison  the long-length slice of the comparison (configs/compare.py:long_slice: adding at
              T=200 and 500, seeds 3-5) with each run stopping when solved; it resumes, so
              the time limit only shortens it
  loop        issue 27's targets for the training loop (benchmarks/loop_device.py): the
              comparison's Transformer at T=200 with 3 seeds (loop steps/s; target >= 300), a
              10-rate x 3-seed population against one member (target <= 2x), and adding_h97's
              LSTM at T=1000 with 10 seeds stopping when solved, for the rest of its limit. Last in
              the default order, so the 8-minute budget may skip it:
              `--steps=devices,loop` runs it alone
Everything lands in --out (at most 9 files): device_check.json (every step: command, status,
seconds, the end of its output), device_check.md (the summary table), device_check.log (all
output), bench.json / bench.md, transformer_profile.json, comparison_report.md /
comparison_results.json, loop.json.
"""
import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
TESTS = ("tests/test_models.py", "tests/test_ops_attention.py", "tests/test_chunked_attention.py",
         "tests/test_lstm_vjp.py", "tests/test_ops_recurrent.py", "tests/test_train.py",
         "tests/test_vmap_seeds.py")
BENCH_SECTIONS = "lstm,gru,transformer,long"
LOOP_LIMIT_S = 260  # the loop step's limit; loop_device stops its last part 20 s before


@dataclasses.dataclass
class Step:
  name: str
  what: str
  argv: Callable[[str], list]  # out dir -> command
  timeout: int  # seconds, before the budget shortens it
  collect: Callable[[str], dict] = lambda out: {}  # reads what the step wrote
  env: dict = dataclasses.field(default_factory=dict)


def _read_json(path: str):
  """The JSON a step wrote to `path`, or None when it wrote none."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _devices_code() -> str:
  return r"""
import json, time, jax, jax.numpy as jnp, flax, optax
print("backend", jax.default_backend(), "devices", jax.devices())
info = dict(backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
            device_kind=jax.devices()[0].device_kind, jax=jax.__version__, flax=flax.__version__,
            optax=optax.__version__, local_device_count=jax.local_device_count())
big = jax.default_backend() != "cpu"
for dtype, n in (("bfloat16", 8192 if big else 512), ("float32", 4096 if big else 512)):
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(10):
    out = f(a)
  out.block_until_ready()
  info[f"matmul_{dtype}_tflops"] = 2 * n**3 * 10 / (time.perf_counter() - t) / 1e12
print("DEVICE_INFO " + json.dumps(info))
"""


def _checkpoint_code(workdir: str, phase: str) -> str:
  """phase 'write': outputs of the restored run on the accelerator; 'read': the same on the CPU."""
  return rf"""
import json, numpy as np, jax
from attnlab.analysis.runs import load_run
run = load_run({workdir!r})
x = np.random.default_rng(0).uniform(size=(8, 50, 2)).astype(np.float32)
x[..., 1] = 0.0; x[:, 3, 1] = 1.0; x[:, 40, 1] = 1.0
y = np.asarray(run.model.apply(run.variables, x), np.float64)
print("CHECKPOINT", {phase!r}, jax.default_backend(), "step", run.step, "y[:3]", y.reshape(-1)[:3])
np.save({workdir!r} + "/probe_{phase}.npy", y)
"""


def _compare_probe(workdir: str) -> dict:
  import numpy as np
  a, b = (np.load(os.path.join(workdir, f"probe_{p}.npy")) for p in ("write", "read"))
  rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))
  # bf16 compute on the accelerator against f32 on the CPU: agreement to bf16's precision
  return dict(relative_difference=rel, ok=bool(np.isfinite(rel) and rel < 2e-2))


def steps(work: str) -> list:
  ckpt = os.path.join(work, "checkpoint_run")
  comparison = os.path.join(work, "comparison")
  train = [PY, "-m", "experiments.main", "--config=configs/adding.py:lstm", f"--workdir={ckpt}",
           "--config.task.seq_len=50", "--config.num_train_steps=60", "--config.dtype=bfloat16",
           "--config.eval_every=30", "--config.checkpoint_every=30"]

  def checkpoint_argv(out):
    script = " && ".join([
        " ".join(train),
        f"{PY} -c {_q(_checkpoint_code(ckpt, 'write'))}",
        f"JAX_PLATFORMS=cpu {PY} -c {_q(_checkpoint_code(ckpt, 'read'))}"])
    return ["bash", "-c", script]

  def bench_collect(out):
    res = _read_json(os.path.join(out, "bench.json"))
    if res is None:
      return {}
    return {"bench": {s: {n: round(1e3 * r["step_s"], 3) for n, r in res[s]["rows"].items()}
                      for s in ("lstm", "gru", "transformer") if s in res}}

  def comparison_collect(out):
    """The report if the comparison finished, else every trained point read from its workdir."""
    got = {}
    for name, dest in (("report.md", "comparison_report.md"),
                       ("results.json", "comparison_results.json")):
      if os.path.exists(os.path.join(comparison, name)):
        shutil.copy(os.path.join(comparison, name), os.path.join(out, dest))
        got[name] = dest
    got["points"] = _points(os.path.join(comparison, "learning_cost", "adding"))
    return got

  def loop_collect(out):
    res = _read_json(os.path.join(out, "loop.json"))
    if res is None:
      return {}
    pick = {"seeds": ("loop_steps_per_s",), "population": ("ratio", "members"),
            "hochreiter": ("steps_reached", "solved", "wall_s")}
    return {"loop": {part: {k: res[part].get(k) for k in keys + ("error",)}
                     for part, keys in pick.items() if part in res}}

  return [
      Step("devices", "devices, versions, matmul rates", lambda out: [PY, "-c", _devices_code()], 45),
      Step("tests", "accelerator-relevant tests (pytest -n 12)",
           lambda out: [PY, "-m", "pytest", "-q", "-n", "12", "-rfE", "--durations=10", "-p", "no:cacheprovider",
                        "--junitxml", os.path.join(work, "junit.xml"), *TESTS], 150,
           lambda out: _junit(os.path.join(work, "junit.xml")),
           # the tests' tolerances are float32 arithmetic's: no TF32 matrix units here
           env=dict(JAX_DEFAULT_MATMUL_PRECISION="highest")),
      Step("checkpoint", "bf16 LSTM trained on the accelerator, restored on the CPU",
           checkpoint_argv, 75, lambda out: _compare_probe(ckpt)),
      Step("benchmarks", f"benchmarks.run --sections={BENCH_SECTIONS}",
           lambda out: [PY, "-m", "benchmarks.run", f"--sections={BENCH_SECTIONS}", "--repeats=3",
                        "--no-memory", f"--json={os.path.join(out, 'bench.json')}",
                        f"--markdown={os.path.join(out, 'bench.md')}"], 120, bench_collect),
      Step("profile", "benchmarks.transformer_profile --lengths=150,500 --d_ff=128",
           lambda out: [PY, "-m", "benchmarks.transformer_profile", "--lengths=150,500",
                        "--d_ff=128", "--repeats=3", "--label=device",
                        f"--out={os.path.join(out, 'transformer_profile.json')}"], 60),
      Step("comparison", "configs/compare.py:long_slice (adding T=200, 500; seeds 3-5)",
           lambda out: [PY, "-m", "experiments.main", "--config=configs/compare.py:long_slice",
                        f"--workdir={comparison}"], 300, comparison_collect),
      Step("loop", "issue 27's loop targets: Transformer T=200 x 3 seeds, a 30-member "
           "population, adding_h97 LSTM T=1000 x 10 seeds",
           lambda out: [PY, "-m", "benchmarks.loop_device",
                        f"--out={os.path.join(out, 'loop.json')}", f"--budget={LOOP_LIMIT_S - 20}"],
           LOOP_LIMIT_S, loop_collect),
  ]


def _points(root: str) -> list:
  """One row per trained (model, T, seed) workdir: its last metrics, solved step, steps/s."""
  rows = []
  for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    path = os.path.join(root, name, "metrics.jsonl")
    if not os.path.exists(path):
      continue
    row, rates = {"point": name}, []
    with open(path) as f:
      for line in f:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue
        rates += [rec["steps_per_sec"]] if "steps_per_sec" in rec else []
        row.update({k: v for k, v in rec.items() if k.startswith(("eval_", "final_", "solved_"))
                    or k == "step"})
    row["steps_per_sec_median"] = sorted(rates)[len(rates) // 2] if rates else None
    rows.append(row)
  return rows


def _q(code: str) -> str:
  return "'" + code.replace("'", "'\"'\"'") + "'"


def _junit(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  import xml.etree.ElementTree as ET
  root = ET.parse(path).getroot()
  suite = root if root.tag == "testsuite" else root.find("testsuite")
  counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
  failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
            if c.find("failure") is not None or c.find("error") is not None]
  return dict(counts, failed=failed[:30])


def run_step(step: Step, out: str, timeout: int, log) -> dict:
  argv = step.argv(out)
  env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false", **step.env)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
  start = time.time()
  log(f"\n===== {step.name}: {step.what} (limit {timeout} s)\n$ {_show(argv, step.env)}\n")
  proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
  lines, killed = [], threading.Event()

  def kill():  # SIGKILL the step's process group: jax.distributed and absl catch SIGTERM
    killed.set()
    os.killpg(proc.pid, 9)

  watchdog = threading.Timer(timeout, kill)  # fires even while the step prints nothing
  watchdog.start()
  for line in proc.stdout:  # streamed, so a killed step still leaves its output
    lines.append(line)
    log(line, end="")
  proc.wait()
  watchdog.cancel()
  if killed.is_set():
    status = f"timed out after {timeout} s"
  else:
    status = "passed" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
  row = dict(step=step.name, what=step.what, command=_show(argv), status=status,
             seconds=round(time.time() - start, 1), output_tail="".join(lines)[-4000:])
  try:
    row.update(step.collect(out))
  except Exception as e:  # the step's own files are broken: say so, keep going
    row["collect_error"] = f"{type(e).__name__}: {e}"
  for line in lines:
    if line.startswith("DEVICE_INFO "):
      row["device"] = json.loads(line[len("DEVICE_INFO "):])
  if step.name == "checkpoint" and row.get("ok") is False:
    row["status"] = "failed (CPU outputs differ)"
  log(f"----- {step.name}: {row['status']} in {row['seconds']} s\n")
  return row


def _show(argv, env=None) -> str:
  """The command as a shell line, the step's environment variables first."""
  prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
  if argv[:2] == ["bash", "-c"]:
    return prefix + "bash -c '...'  (train, probe on the accelerator, probe with JAX_PLATFORMS=cpu)"
  return prefix + " ".join(a if "\n" not in a else "'<inline script>'" for a in argv)


def markdown(rows: list, started: str) -> str:
  device = next((r.get("device") for r in rows if r.get("device")), {})
  lines = [f"# device check, {started}", "",
           f"{device.get('device_kind', '?')} ({device.get('backend', '?')}), jax "
           f"{device.get('jax', '?')}, flax {device.get('flax', '?')}; host {socket.gethostname()}",
           "", "| step | status | seconds | detail |", "|---|---|---|---|"]
  for r in rows:
    detail = ""
    if r["step"] == "devices" and device:
      detail = (f"bf16 matmul {device.get('matmul_bfloat16_tflops', 0):.0f} TFLOP/s, "
                f"f32 {device.get('matmul_float32_tflops', 0):.0f} TFLOP/s")
    elif r["step"] == "tests" and "tests" in r:
      detail = f"{r['tests']} tests, {r['failures']} failed, {r['errors']} errors, {r['skipped']} skipped"
    elif r["step"] == "checkpoint" and "relative_difference" in r:
      detail = f"CPU vs accelerator outputs: relative difference {r['relative_difference']:.2e}"
    elif r["step"] == "loop" and "loop" in r:
      detail = "; ".join(
          f"{part}: " + ", ".join(f"{k} {v}" for k, v in got.items() if v is not None)
          for part, got in r["loop"].items())
    elif r["step"] == "benchmarks" and "bench" in r:
      detail = "; ".join(f"{s}: " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in v.items())
                         for s, v in r["bench"].items())
    lines.append(f"| {r['step']} | {r['status']} | {r['seconds']} | {detail} |")
  return "\n".join(lines) + "\n"


def parse(argv):
  p = argparse.ArgumentParser(prog="python -m benchmarks.device_check",
                              description=__doc__.split("\n")[0])
  names = [s.name for s in steps("WORK")]
  p.add_argument("--steps", default=",".join(names), help=f"comma-separated subset of {names}")
  p.add_argument("--budget", type=int, default=490, help="seconds for all steps together")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "device_check"),
                 help="folder for the results (at most 9 files)")
  p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
  p.add_argument("--dry-run", action="store_true", help="list the steps and commands, run nothing")
  return p.parse_args(argv)


def main(argv=None) -> Optional[list]:
  args = parse(sys.argv[1:] if argv is None else argv)
  work = args.work or ("<scratch>" if args.dry_run else tempfile.mkdtemp(prefix="attnlab_device_check_"))
  chosen = [s for s in args.steps.split(",") if s]
  all_steps = {s.name: s for s in steps(work)}
  unknown = [s for s in chosen if s not in all_steps]
  if unknown:
    raise SystemExit(f"device_check: unknown steps {unknown}; valid: {', '.join(all_steps)}")
  if args.dry_run:
    print(f"device_check would run, within {args.budget} s, writing to {args.out}:")
    for name in chosen:
      s = all_steps[name]
      print(f"  {s.name:11s} (limit {s.timeout:3d} s) {s.what}\n      $ {_show(s.argv(args.out), s.env)}")
    return None
  os.makedirs(args.out, exist_ok=True)
  log_file = open(os.path.join(args.out, "device_check.log"), "w")

  def log(text, end="\n"):
    print(text, end=end, flush=True)
    log_file.write(text + end)
    log_file.flush()

  started = time.strftime("%Y-%m-%d %H:%M:%S")
  end = time.time() + args.budget
  rows = []
  for name in chosen:
    step = all_steps[name]
    left = int(end - time.time())
    if left < 20:
      rows.append(dict(step=name, what=step.what, status="skipped (budget spent)", seconds=0))
      continue
    rows.append(run_step(step, args.out, min(step.timeout, left), log))
    with open(os.path.join(args.out, "device_check.json"), "w") as f:
      json.dump(dict(started=started, budget_s=args.budget, steps=rows), f, indent=1)
    with open(os.path.join(args.out, "device_check.md"), "w") as f:
      f.write(markdown(rows, started))
  log("\n" + markdown(rows, started))
  log_file.close()
  return rows


if __name__ == "__main__":
  main()
