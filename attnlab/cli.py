"""The command line's one error path: a user error is one line on stderr, never a traceback.

  def main(argv): ...
  if __name__ == "__main__":
    cli.run(main, __doc__)                     # experiments/main.py, experiments/sweep.py

A bad config file, field or value, workdir, or sweep grid (ValueError, a missing file, a
`attnlab.errors.UserError`, a flag that does not parse) exits with code 2 after one line that
names the field or file, the value and what is allowed; `--debug` (or ATTNLAB_DEBUG=1) shows the
traceback instead. A run stopped by SIGTERM or Ctrl-C after saving a checkpoint exits 143 or 130
(Ctrl-C or SIGTERM before any checkpoint, e.g. while compiling: one line and 130 or 143 too).
`--help` prints the entry point's docstring and flags.
A fault of the machine or of a file (`attnlab.errors.Fault`: a damaged checkpoint, a full disk, a
file-size limit, a read-only file system, too little memory) is one line too, with exit code
FAULT_EXIT_CODE (74); the process then ends at once, so that the checkpoint writer's background
threads, whose failure that line reports, do not print their own tracebacks while Python shuts down.
"""
import logging as py_logging
import os
import signal
import sys
import threading

from absl import app, flags
from absl import logging as absl_logging

from attnlab import layout
from attnlab.errors import FAULT_EXIT_CODE, UserError, fault_message

USER_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell expects after Ctrl-C
TERMINATED_EXIT_CODE = 143  # 128 + SIGTERM
# What a user can cause and act on from the message alone. A non-finite loss stops a run with a
# message that says which checkpoint is intact and how to continue.
USER_ERRORS = (UserError, ValueError, FileNotFoundError, NotADirectoryError, FileExistsError,
               IsADirectoryError, PermissionError, FloatingPointError, flags.Error, app.UsageError)

flags.DEFINE_bool("debug", False, "show the full traceback of an error (or set ATTNLAB_DEBUG=1)")


class Terminated(BaseException):
  """SIGTERM before the trainer installed its own handler (start-up, compilation): raised in the
  main thread like KeyboardInterrupt, so that it ends in one line instead of a silent kill."""


def _raise_terminated(signum, frame):
  raise Terminated()


def debug_requested(argv) -> bool:
  """--debug on the command line or ATTNLAB_DEBUG set (read before flags parse: parsing can fail)."""
  if os.environ.get("ATTNLAB_DEBUG", "") not in ("", "0", "false"):
    return True
  return any(a in ("--debug", "-debug", "--debug=true", "--debug=1", "--debug=True") for a in argv)


def message(error: BaseException) -> str:
  """The line shown for a user error."""
  text = str(error).strip() or type(error).__name__
  if isinstance(error, KeyError):  # str(KeyError('x')) is "'x'"
    text = f"{type(error).__name__}: {text}"
  return text


def run(main, doc: str, config_flag: str = None, default_config: str = None):
  """app.run(main) with flags parsed by `parse_flags` and user errors shown as one line.

  doc: the entry point's docstring, printed by --help (also when started as a console script,
  whose own __main__ has none, or by `python -m attnlab COMMAND`). config_flag: the name of a `config_flags.DEFINE_config_file`
  flag whose file and `--<flag>.field=value` overrides are checked before absl parses them;
  default_config: the file it reads when the flag is not given.
  """
  argv = list(sys.argv)
  debug = debug_requested(argv)
  sys.modules["__main__"].__doc__ = doc  # what absl's --help prints (a console script has none)
  _show_in_short_help(main.__module__)

  def parse(args):
    return parse_flags(args, config_flag, default_config)

  from attnlab.train.trainer import Preempted
  if not debug:
    absl_logging.get_absl_handler().addFilter(_OrbaxNoise())
    sys.excepthook = _quiet_closed_loops(sys.excepthook)
    threading.excepthook = _quiet_closed_loops(threading.excepthook, thread=True)
    sys.unraisablehook = _quiet_closed_loops(sys.unraisablehook, unraisable=True)
  try:
    signal.signal(signal.SIGTERM, _raise_terminated)  # the trainer's own handler replaces it
  except ValueError:  # not the main thread
    pass
  try:
    app.run(main, flags_parser=parse)
  except BrokenPipeError:  # the output's reader closed (`... --list=models | head`): not an error
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)
  except (Terminated, KeyboardInterrupt) as e:  # a signal before any checkpoint could be saved
    if debug:
      raise
    what, code = (("terminated (SIGTERM)", TERMINATED_EXIT_CODE) if isinstance(e, Terminated)
                  else ("interrupted (Ctrl-C)", INTERRUPTED_EXIT_CODE))
    print(f"{what} before a checkpoint could be saved; rerun the same command to resume from the "
          "last one", file=sys.stderr)
    sys.exit(code)
  except Preempted as e:  # a checkpoint was saved on SIGTERM or Ctrl-C (e.g. inside a sweep)
    print(str(e), file=sys.stderr)
    sys.exit(e.exit_code)
  except Exception as e:  # pylint: disable=broad-except  (re-raised unless it is ours to show)
    fault = fault_message(e)
    if debug or (fault is None and not isinstance(e, USER_ERRORS)):
      raise
    print(f"error: {fault or message(e)}", file=sys.stderr)
    print("(--debug or ATTNLAB_DEBUG=1 shows the traceback)", file=sys.stderr)
    if fault is None:
      sys.exit(USER_ERROR_EXIT_CODE)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(FAULT_EXIT_CODE)  # pylint: disable=protected-access


_READ_ONLY_NOTES = ("Given directory is read only", "read_only=True, setting save_interval_steps")
_CLOSED_LOOP = ("Event loop is closed", "cannot schedule new futures after interpreter shutdown")


class _OrbaxNoise(py_logging.Filter):
  """Drops orbax's records of a failed save, which its background threads log with tracebacks
  (the main thread gets the same error from the save and reports it once), and its notes that a
  checkpoint opened for reading is read-only (dozens a run). --debug keeps every record."""

  def filter(self, record) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    return record.levelno < py_logging.ERROR and not any(
        note in record.getMessage() for note in _READ_ONLY_NOTES)


def _quiet_closed_loops(hook, thread: bool = False, unraisable: bool = False):
  """An exception hook (sys.excepthook, threading.excepthook or sys.unraisablehook) without the
  'Event loop is closed' errors that TensorStore's callbacks raise when a failed save has already
  stopped orbax's event loop (the failure itself is reported)."""
  def quiet(*args):
    value = args[0].exc_value if (thread or unraisable) else args[1]
    if not (isinstance(value, RuntimeError) and str(value) in _CLOSED_LOOP):
      hook(*args)
  return quiet


def _show_in_short_help(module_name: str):
  """--help lists the flags of the main module, which absl keys by sys.argv[0]; a console script
  (`attnlab`) imports the entry point as a module, so its flags (and --debug) are added there."""
  key = sys.argv[0]
  have = {f.name for f in flags.FLAGS.get_flags_for_module(key)}
  for module in (module_name, __name__):
    for flag in flags.FLAGS.get_flags_for_module(module):
      if flag.name not in have:
        flags.FLAGS.register_flag_by_module(key, flag)
        have.add(flag.name)


def parse_flags(argv: list, config_flag: str = None, default_config: str = None) -> list:
  """absl's flag parsing, with every mistake raised as a UserError naming the flag and value."""
  if any(a in ("-h", "-help", "--help", "--helpshort") for a in argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)  # absl's own --help exits 1
  if config_flag:
    argv = _with_config(argv, config_flag, default_config)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise UserError(str(e)) from e
  except (AttributeError, KeyError, OSError) as e:  # config_flags: an override not checked above
    raise UserError(f"cannot apply the config overrides: {message(e)}") from e


def _flag_value(argv, name):
  """The value of --name=VALUE or --name VALUE in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}=") or arg.startswith(f"-{name}="):
      return arg.split("=", 1)[1]
    if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _with_config(argv, name, default):
  """argv with the default config file made explicit, after checking the file and overrides."""
  spec = _flag_value(argv, name)
  if spec is None and default is not None:
    spec = default
    argv = [argv[0], f"--{name}={default}", *argv[1:]]
  if spec is None:
    return argv
  shipped = layout.resolve_config(spec)
  if shipped != spec:  # a shipped config by name, or configs/x.py named from another directory
    argv = [f"--{name}={shipped}" if _flag_value([a], name) == spec else a for a in argv]
    spec = shipped
  try:
    config = load_config(spec, f"--{name}={spec}")
  except (ValueError, TypeError) as e:  # the config file refused its argument, or a value's type
    raise UserError(str(e) if spec in str(e) else f"--{name}={spec}: {e}") from e
  for arg in argv[1:]:
    if arg.startswith(f"--{name}.") or arg.startswith(f"--no{name}."):
      path = arg.split("=", 1)[0].split(".", 1)[1]
      check_field(config, path, arg)
  return argv


def config_file(spec: str, shown: str = None) -> str:
  """The file of a --config value ('adding', 'configs/adding.py', 'my.py', each with an optional
  ':argument'), a shipped config's made absolute; UserError naming the valid names if missing."""
  path = layout.resolve_config(spec).partition(":")[0]
  shown = shown or f"--config={spec}"
  if os.path.isfile(path):
    return path
  if layout.is_config_name(path):
    raise UserError(f"{shown}: no config named {path!r}; shipped configs: "
                    f"{', '.join(layout.config_names())} (e.g. --config=adding:lstm), or give a "
                    "config file's path")
  folder = os.path.dirname(path) or "."
  if not os.path.isdir(folder) and os.path.normpath(folder) == "configs":
    folder = layout.configs_dir()  # where the shipped configs are
  found = sorted(f for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_")) \
      if os.path.isdir(folder) else []
  hint = f"config files in {folder}/: {', '.join(found)}" if found else \
      "give a config by name (adding:lstm) or a config file such as configs/adding.py"
  raise UserError(f"{shown}: config file {path!r} not found; {hint}")


def load_config(spec: str, shown: str = None):
  """get_config(argument) of a 'name[:argument]' or 'file.py[:argument]' spec; UserError naming
  the file if missing."""
  import importlib.util
  shown = shown or spec
  path, arg = config_file(spec, shown), spec.partition(":")[2]
  module_spec = importlib.util.spec_from_file_location("attnlab_cli_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise UserError(f"{shown}: {path} line {e.lineno}: {e.msg}; it cannot be read as Python") from e
  if not hasattr(module, "get_config"):
    raise UserError(f"{shown}: {path} has no get_config(); it is not a config file")
  return module.get_config(arg) if arg else module.get_config()


def check_field(config, path: str, shown: str):
  """UserError if `path` ('task.seq_len') is not a field of config."""
  node, done = config, []
  for key in path.split("."):
    if not hasattr(node, "keys") or key not in node:
      where = f"config.{'.'.join(done)}" if done else "config"
      valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else \
          f"none ({where} is a value, not a group of fields)"
      raise UserError(f"{shown}: config has no field {path!r}; valid fields of {where}: {valid}")
    node = node[key]
    done.append(key)
