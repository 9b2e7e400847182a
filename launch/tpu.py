"""Cloud TPU VM launcher: create a TPU VM or pod slice, install attnlab on every worker, run, fetch logs, delete.

  python -m launch.tpu create --name=attnlab-v4 --zone=us-central2-b --accelerator=v4-32 [--spot]
  python -m launch.tpu setup  --name=attnlab-v4 --zone=us-central2-b [--repo=URL --branch=main | --copy]
  python -m launch.tpu run    --name=attnlab-v4 --zone=us-central2-b \\
      --config=configs/adding.py:transformer,seq_len=500 --workdir=gs://BUCKET/runs/adding_tf \\
      -- --config.num_train_steps=20000
  python -m launch.tpu sweep  --name=... --zone=... --config=configs/adding.py \\
      --sweep='model=[lstm,transformer] task.seq_len=[100,500]' --root=gs://BUCKET/runs/sweep
  python -m launch.tpu logs   --name=attnlab-v4 --zone=us-central2-b [--worker=0]
  python -m launch.tpu delete --name=attnlab-v4 --zone=us-central2-b

Every command takes --dry-run, which prints exactly the commands it would execute and runs none.
Runs start on all workers at once (`--worker=all`) inside a detached tmux session, so a dropped
ssh connection does not stop them; every worker calls jax.distributed.initialize() (the pod slice
is detected), each reads its own slice of the data, and process 0 writes metrics. On a spot VM,
after a preemption: recreate the VM, `setup` and `run` the same command — the run resumes from its
workdir on GCS.
"""
import argparse
import shlex
import subprocess
import sys

from attnlab import sweep as sweep_lib

REMOTE_DIR = "~/attnlab"
SESSION = "attnlab"
LOG = "~/attnlab_run.log"


def _gcloud(*args) -> list:
  return ["gcloud", "compute", "tpus", "tpu-vm", *args]


def _ssh(a, command: str, worker: str = "all") -> list:
  return _gcloud("ssh", a.name, f"--zone={a.zone}", f"--project={a.project}" if a.project else None,
                 f"--worker={worker}", f"--command={command}")


def create_commands(a) -> list:
  cmd = _gcloud("create", a.name, f"--zone={a.zone}", f"--accelerator-type={a.accelerator}",
                f"--version={a.runtime}")
  if a.project:
    cmd.append(f"--project={a.project}")
  if a.spot:
    cmd.append("--spot")
  return [cmd]


def setup_commands(a) -> list:
  """Code onto every worker (git clone, or scp of this checkout), then install attnlab[tpu]."""
  install = f"cd {REMOTE_DIR} && python3 -m pip install -q -e '.[tpu]'"
  if a.copy:
    copy = _gcloud("scp", "--recurse", ".", f"{a.name}:{REMOTE_DIR}", f"--zone={a.zone}",
                   "--worker=all")
    if a.project:
      copy.append(f"--project={a.project}")
    return [copy, _ssh(a, install)]
  repo = a.repo or _origin_url()
  clone = (f"rm -rf {REMOTE_DIR} && git clone --depth=1 --branch={shlex.quote(a.branch)} "
           f"{shlex.quote(repo)} {REMOTE_DIR}")
  return [_ssh(a, f"{clone} && {install}")]


def _origin_url() -> str:
  """The URL this checkout was cloned from, which the workers clone too."""
  result = subprocess.run(["git", "config", "--get", "remote.origin.url"], capture_output=True,
                          text=True)
  url = result.stdout.strip()
  if result.returncode or not url or "://" not in url and "@" not in url:
    raise SystemExit("setup: this checkout has no remote URL that TPU workers could clone; "
                     "pass --repo=URL, or --copy to scp this checkout")
  return url


def _detached(a, program: list) -> str:
  """The remote shell command that runs `program` in a detached tmux session, logging to LOG."""
  inner = f"cd {REMOTE_DIR} && {shlex.join(program)} 2>&1 | tee -a {LOG}"
  return (f"tmux kill-session -t {SESSION} 2>/dev/null; "
          f"tmux new-session -d -s {SESSION} {shlex.quote(inner)}")


def run_commands(a) -> list:
  program = ["python3", "-m", "experiments.main", f"--config={a.config}", f"--workdir={a.workdir}",
             *a.overrides]
  return [_ssh(a, _detached(a, program))]


def sweep_commands(a) -> list:
  """One job per grid point, run one after another on the slice (each resumes on its own)."""
  get_config = sweep_lib.load_config_file(a.config)
  jobs = []
  for point in sweep_lib.points(sweep_lib.parse_grid(a.sweep)):
    get_config(sweep_lib.config_arg(point))  # a bad point fails here, not on the TPU
    jobs.append(["python3", "-m", "experiments.main",
                 f"--config={a.config}:{sweep_lib.config_arg(point)}",
                 f"--workdir={a.root.rstrip('/')}/{sweep_lib.point_name(point)}", *a.overrides])
  chained = "; ".join(shlex.join(j) for j in jobs)  # a failed point does not stop the others
  inner = f"cd {REMOTE_DIR} && ( {chained} ) 2>&1 | tee -a {LOG}"
  command = (f"tmux kill-session -t {SESSION} 2>/dev/null; "
             f"tmux new-session -d -s {SESSION} {shlex.quote(inner)}")
  return [_ssh(a, command)]


def logs_commands(a) -> list:
  return [_ssh(a, f"tail -n {a.lines} {LOG}", worker=a.worker)]


def delete_commands(a) -> list:
  cmd = _gcloud("delete", a.name, f"--zone={a.zone}", "--quiet")
  if a.project:
    cmd.append(f"--project={a.project}")
  return [cmd]


COMMANDS = {"create": create_commands, "setup": setup_commands, "run": run_commands,
            "sweep": sweep_commands, "logs": logs_commands, "delete": delete_commands}


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m launch.tpu", description=__doc__.split("\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  for name in COMMANDS:
    s = sub.add_parser(name)
    s.add_argument("--name", required=True, help="TPU VM name")
    s.add_argument("--zone", required=True)
    s.add_argument("--project", default=None)
    s.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    if name == "create":
      s.add_argument("--accelerator", required=True, help="e.g. v4-8, v4-32, v5litepod-16")
      s.add_argument("--runtime", default="tpu-ubuntu2204-base", help="TPU software version")
      s.add_argument("--spot", action="store_true", help="a spot (preemptible) VM")
    if name == "setup":
      s.add_argument("--repo", default=None, help="git URL (default: this checkout's origin)")
      s.add_argument("--branch", default="main")
      s.add_argument("--copy", action="store_true", help="scp this checkout instead of git clone")
    if name in ("run", "sweep"):
      s.add_argument("--config", required=True, help="config file[:argument]")
      s.add_argument("overrides", nargs="*", help="after --: flags passed to experiments.main")
    if name == "run":
      s.add_argument("--workdir", required=True, help="run directory, e.g. gs://BUCKET/runs/x")
    if name == "sweep":
      s.add_argument("--sweep", required=True, help="grid: key=[v1,v2] ...")
      s.add_argument("--root", required=True, help="sweep root, e.g. gs://BUCKET/runs/sweep")
    if name == "logs":
      s.add_argument("--worker", default="0")
      s.add_argument("--lines", type=int, default=100)
  return p


def commands(argv) -> tuple:
  """(parsed args, the list of commands, each an argv list) for command-line arguments `argv`."""
  args = parser().parse_args(argv)
  cmds = [[c for c in cmd if c is not None] for cmd in COMMANDS[args.command](args)]
  return args, cmds


def main(argv=None) -> int:
  args, cmds = commands(sys.argv[1:] if argv is None else argv)
  for cmd in cmds:
    print(shlex.join(cmd))
    if not args.dry_run:
      result = subprocess.run(cmd)
      if result.returncode:
        return result.returncode
  return 0


if __name__ == "__main__":
  sys.exit(main())
