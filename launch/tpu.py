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

Every command takes --dry-run, which prints exactly the commands it would execute and runs none;
a --dry-run written after `--` (among `attnlab train`'s flags) is taken as the launcher's own and
never reaches the workers. Before any gcloud command runs, `run` and `sweep` resolve the config
here with the flags after `--` (each --config.FIELD=VALUE set and the config validated as a run
would be, but for the memory estimate, which is the workers'), so a misplaced launcher flag or a
config mistake stops the launch on this machine in one line (exit 2) instead of after the remote
session was replaced. `create` picks the runtime that matches the accelerator (v4 and older:
tpu-ubuntu2204-base; v5e: v2-alpha-tpuv5-lite; v5p: v2-alpha-tpuv5; v6e: v2-alpha-tpuv6e) unless
--runtime names one. `setup` clones --repo, or this checkout's origin; in a clone without a remote
(or with --copy) it sends a clean `git archive` of HEAD instead: the committed files only, never a
virtualenv, runs/ or uncommitted changes (it says so when there are some).
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

from attnlab import cli
from attnlab import sweep as sweep_lib
from attnlab.errors import UserError
from attnlab.train import config as cfg_lib

REMOTE_DIR = "~/attnlab"
SESSION = "attnlab"
LOG = "~/attnlab_run.log"


def _gcloud(*args) -> list:
  return ["gcloud", "compute", "tpus", "tpu-vm", *args]


def _ssh(a, command: str, worker: str = "all") -> list:
  return _gcloud("ssh", a.name, f"--zone={a.zone}", f"--project={a.project}" if a.project else None,
                 f"--worker={worker}", f"--command={command}")


# The TPU VM software version each generation needs (cloud.google.com/tpu/docs/runtimes), by the
# accelerator type's prefix; v2, v3 and v4 run the base Ubuntu image.
RUNTIMES = (("v5litepod", "v2-alpha-tpuv5-lite"), ("v5e", "v2-alpha-tpuv5-lite"),
            ("v5p", "v2-alpha-tpuv5"), ("v6e", "v2-alpha-tpuv6e"), ("v2", "tpu-ubuntu2204-base"),
            ("v3", "tpu-ubuntu2204-base"), ("v4", "tpu-ubuntu2204-base"))
ARCHIVE = "attnlab_src.tgz"


def runtime_for(accelerator: str) -> str:
  """The software version for `accelerator` (e.g. v5litepod-16 -> v2-alpha-tpuv5-lite)."""
  for prefix, runtime in RUNTIMES:
    if accelerator.startswith(prefix):
      return runtime
  raise SystemExit(f"create: no known runtime for --accelerator={accelerator}; known prefixes: "
                   f"{', '.join(p for p, _ in RUNTIMES)}; pass --runtime=VERSION")


def create_commands(a) -> list:
  runtime = a.runtime or runtime_for(a.accelerator)
  cmd = _gcloud("create", a.name, f"--zone={a.zone}", f"--accelerator-type={a.accelerator}",
                f"--version={runtime}")
  if a.project:
    cmd.append(f"--project={a.project}")
  if a.spot:
    cmd.append("--spot")
  return [cmd]


def setup_commands(a) -> list:
  """Code onto every worker (git clone, or a `git archive` of HEAD), then install attnlab[tpu]."""
  install = f"cd {REMOTE_DIR} && python3 -m pip install -q -e '.[tpu]'"
  repo = a.repo or (None if a.copy else _origin_url())
  if repo is None:  # a clean copy of HEAD: never .venv, runs/, ignored or uncommitted files
    _say_what_is_left_out(a.dry_run)
    pack = ["git", "archive", "--format=tar.gz", f"--output={ARCHIVE}", "HEAD"]
    copy = _gcloud("scp", ARCHIVE, f"{a.name}:~/{ARCHIVE}", f"--zone={a.zone}", "--worker=all")
    if a.project:
      copy.append(f"--project={a.project}")
    unpack = (f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -xzf ~/{ARCHIVE} -C {REMOTE_DIR}"
              f" && {install}")
    return [pack, copy, _ssh(a, unpack)]
  clone = (f"rm -rf {REMOTE_DIR} && git clone --depth=1 --branch={shlex.quote(a.branch)} "
           f"{shlex.quote(repo)} {REMOTE_DIR}")
  return [_ssh(a, f"{clone} && {install}")]


def _origin_url():
  """The URL this checkout was cloned from, which the workers clone too; None without one (a
  local clone: setup sends a copy of HEAD instead)."""
  result = subprocess.run(["git", "config", "--get", "remote.origin.url"], capture_output=True,
                          text=True)
  url = result.stdout.strip()
  if result.returncode or not url or "://" not in url and "@" not in url:
    return None
  return url


def _say_what_is_left_out(dry_run: bool):
  """A line on stderr when the working tree has changes that a copy of HEAD leaves out."""
  result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                          capture_output=True, text=True)
  if result.returncode:
    raise UserError("setup: not inside a git checkout; pass --repo=URL")
  if result.stdout.strip():
    print(f"{'(dry run) ' if dry_run else ''}setup: sending HEAD; the uncommitted changes of "
          "this checkout are not sent (commit them first to send them)", file=sys.stderr)


def _detached(a, program: list) -> str:
  """The remote shell command that runs `program` in a detached tmux session, logging to LOG."""
  inner = f"cd {REMOTE_DIR} && {shlex.join(program)} 2>&1 | tee -a {LOG}"
  return (f"tmux kill-session -t {SESSION} 2>/dev/null; "
          f"tmux new-session -d -s {SESSION} {shlex.quote(inner)}")


# What `attnlab train` takes after `--` besides --config.FIELD=VALUE (flags of its own).
TRAIN_FLAGS = ("--debug", "--nodebug", "--verbosity", "-v", "--v")


def check_overrides(spec: str, overrides: list):
  """UserError (one line) unless every flag after `--` is one `attnlab train` takes and the config
  `spec` with those --config.FIELD=VALUE set is valid as a run would check it (not its memory
  estimate, which is the workers' business): checked here, before any gcloud command runs."""
  config = cli.load_config(spec, f"--config={spec}")
  for flag in overrides:
    name, _, value = flag.partition("=")
    if name.startswith("--config."):
      cli.check_field(config, name[len("--config."):], flag)
      try:
        cfg_lib.apply_overrides(config, {name[len("--config."):]: cfg_lib._literal(value)})
      except (TypeError, ValueError) as e:
        raise UserError(f"{flag}: {cli.message(e)}") from None
    elif name not in TRAIN_FLAGS:
      raise UserError(f"{flag} after `--` is not a flag of `attnlab train` (it takes "
                      "--config.FIELD=VALUE, --debug, --verbosity); the launcher's own flags "
                      "(--name, --zone, --workdir, --config, --dry-run ...) go before `--`")
  if "comparison" in config:  # a comparison config: its runs are validated as it builds them
    return
  config.check_memory = False
  try:
    cfg_lib.validate(config, num_devices=1)
  except (TypeError, ValueError) as e:
    raise UserError(f"--config={spec}: {cli.message(e)}") from None


def run_commands(a) -> list:
  check_overrides(a.config, a.overrides)
  program = ["python3", "-m", "attnlab", "train", f"--config={a.config}", f"--workdir={a.workdir}",
             *a.overrides]
  return [_ssh(a, _detached(a, program))]


def sweep_commands(a) -> list:
  """One job per grid point, run one after another on the slice (each resumes on its own)."""
  get_config = sweep_lib.load_config_file(cli.config_file(a.config))
  jobs = []
  for point in sweep_lib.points(sweep_lib.parse_grid(a.sweep)):
    get_config(sweep_lib.config_arg(point))  # a bad point fails here, not on the TPU
    check_overrides(f"{a.config}:{sweep_lib.config_arg(point)}", a.overrides)
    jobs.append(["python3", "-m", "attnlab", "train",
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
      s.add_argument("--runtime", default=None,
                     help="TPU software version (default: the one for --accelerator)")
      s.add_argument("--spot", action="store_true", help="a spot (preemptible) VM")
    if name == "setup":
      s.add_argument("--repo", default=None, help="git URL (default: this checkout's origin)")
      s.add_argument("--branch", default="main")
      s.add_argument("--copy", action="store_true",
                     help="send a git archive of HEAD instead of git clone (the default without "
                          "a remote)")
    if name in ("run", "sweep"):
      s.add_argument("--config", required=True, help="config file[:argument]")
      s.add_argument("overrides", nargs="*", help="after --: flags passed to `attnlab train`")
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
  if "overrides" in args and any(o in ("--dry-run", "--dry_run") for o in args.overrides):
    # experiments.main has no --dry-run: the user meant the launcher's, so honour it here
    args.overrides = [o for o in args.overrides if o not in ("--dry-run", "--dry_run")]
    args.dry_run = True
  cmds = [[c for c in cmd if c is not None] for cmd in COMMANDS[args.command](args)]
  return args, cmds


def main(argv=None) -> int:
  try:
    args, cmds = commands(sys.argv[1:] if argv is None else argv)
  except cli.USER_ERRORS as e:  # one line, nothing run
    print(f"error: {cli.message(e)}", file=sys.stderr)
    return cli.USER_ERROR_EXIT_CODE
  for cmd in cmds:
    print(shlex.join(cmd))
    if not args.dry_run:
      result = subprocess.run(cmd)
      if result.returncode:
        return result.returncode
  return 0


if __name__ == "__main__":
  sys.exit(main())
