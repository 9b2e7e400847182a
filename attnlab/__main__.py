"""attnlab's command line. Commands:

  train    train and evaluate one config         attnlab train --config=adding:lstm --workdir=runs/a
  sweep    a grid of config points, one run each  attnlab sweep --config=adding --sweep='seed=[0,1]'
  models   the models and the configs' model words, with their fields' defaults
  tasks    the tasks, their parameters and when a run counts as solved
  config   every field of a config: value, default, choices   attnlab config adding:lstm
           [--config.FIELD=VALUE ...]; with no name, the shipped configs' names

`attnlab COMMAND --help` shows a command's flags; `python -m attnlab ...` is the same command line.
`attnlab --config=...` (flags and no command) trains, as before commands existed. A config is named
(adding:lstm, from attnlab.configs, found from any directory) or given by path (configs/adding.py).
"""
import importlib
import sys

# command: (entry module under attnlab.experiments, flags put before the user's)
COMMANDS = {"train": ("main", []), "sweep": ("sweep", []), "models": ("main", ["--list=models"]),
            "tasks": ("main", ["--list=tasks"]), "config": ("main", ["--list=config"])}


def _command_line(argv: list):
  """(module, argv for it) of `attnlab ARGV...`, or None after printing help or an error line."""
  if not argv or argv[0] in ("-h", "--help", "-help", "help"):
    print(__doc__.strip())
    return None
  command, rest = (argv[0], argv[1:]) if not argv[0].startswith("-") else ("train", argv)
  if command not in COMMANDS:
    print(f"error: unknown command {command!r}; commands: {', '.join(COMMANDS)} "
          "(attnlab --help describes them)", file=sys.stderr)
    sys.exit(2)
  if command == "config" and rest and not rest[0].startswith("-"):
    rest = [f"--config={rest[0]}", *rest[1:]]  # attnlab config adding:lstm
  elif command == "config" and not any(a.startswith(("--config=", "-h", "--help")) for a in rest):
    rest = ["--list=configs", *rest]  # attnlab config: the shipped configs' names
  module, first = COMMANDS[command]
  return f"attnlab.experiments.{module}", [f"attnlab {command}", *first, *rest]


def main():
  found = _command_line(sys.argv[1:])
  if found is None:
    return
  module, sys.argv = found
  importlib.import_module(module).console_entry()


if __name__ == "__main__":
  main()
