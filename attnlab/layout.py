"""One namespace: configs/, experiments/, launch/ and benchmarks/ are importable as attnlab's
subpackages (`attnlab.configs`, `attnlab.experiments`, `attnlab.launch`, `attnlab.benchmarks`).

A wheel installs them there (setup.py's package mapping); an editable install maps them there too
(setuptools' editable finder). A checkout used without any install (`PYTHONPATH=.`, or
`python -m experiments.main` from its root) gets the same names from `CheckoutFinder`, which
attnlab/__init__.py installs when the folders sit beside attnlab/. Library code and configs
therefore write `from attnlab.configs import common`, never `import configs`.
"""
import importlib.abc
import importlib.util
import os
import re
import sys

FOLDERS = ("configs", "experiments", "launch", "benchmarks")  # = setup.py's FOLDERS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout, if this is one


class CheckoutFinder(importlib.abc.MetaPathFinder):
  """Finds attnlab.<folder> in the checkout's top-level <folder>/ (its submodules are then found
  through the package's __path__ as usual). Asked first: the folders beside the attnlab that was
  imported, even where an editable install of another checkout maps the same names."""

  def find_spec(self, fullname, path=None, target=None):
    prefix, _, folder = fullname.partition(".")
    if prefix != "attnlab" or folder not in FOLDERS:
      return None
    where = os.path.join(ROOT, folder)
    return importlib.util.spec_from_file_location(
        fullname, os.path.join(where, "__init__.py"), submodule_search_locations=[where])


def in_checkout() -> bool:
  """Whether attnlab is imported from a checkout (the folders and pyproject.toml beside it)."""
  return (os.path.isfile(os.path.join(ROOT, "pyproject.toml"))
          and all(os.path.isfile(os.path.join(ROOT, f, "__init__.py")) for f in FOLDERS))


def install_finder():
  """Adds CheckoutFinder to sys.meta_path once, in a checkout only (a wheel has the packages)."""
  if in_checkout() and not any(isinstance(f, CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, CheckoutFinder())


def configs_dir() -> str:
  """The folder of the shipped config files (attnlab.configs), installed or in the checkout."""
  import attnlab.configs  # pylint: disable=import-outside-toplevel
  return os.path.dirname(os.path.abspath(attnlab.configs.__file__))


def config_names() -> list:
  """The shipped config files by name ('adding' for configs/adding.py): those with a get_config."""
  folder = configs_dir()
  names = []
  for file in sorted(os.listdir(folder)):
    if file.endswith(".py") and not file.startswith("_"):
      with open(os.path.join(folder, file), encoding="utf-8") as f:
        if "\ndef get_config(" in f.read():
          names.append(file[:-3])
  return names


def is_config_name(path: str) -> bool:
  """'adding' (a name), not 'configs/adding.py' or 'my.py' (paths)."""
  return bool(path) and os.sep not in path and "/" not in path and not path.endswith(".py")


def resolve_config(spec: str) -> str:
  """A --config value with a shipped config's file made absolute, so it is found from any directory:

    'adding:lstm'            -> '<attnlab.configs>/adding.py:lstm'   (a shipped config by name)
    'configs/adding.py:lstm' -> the same, when ./configs/adding.py is not here (another directory)
    'my_configs/x.py:a'      -> unchanged (a file of one's own; an existing file is always itself)
  A name or configs/ path that names no shipped config comes back unchanged (the caller reports it).
  """
  path, sep, arg = spec.partition(":")
  if os.path.isfile(path) or os.path.isabs(path):
    return spec
  parts = os.path.normpath(path).split(os.sep)
  if is_config_name(path):
    name = path
  elif len(parts) == 2 and parts[0] == "configs" and parts[1].endswith(".py"):
    name = parts[1][:-3]
  else:
    return spec
  shipped = os.path.join(configs_dir(), name + ".py")
  return shipped + sep + arg if os.path.isfile(shipped) else spec


def config_stem(spec: str) -> str:
  """'adding' for 'adding:lstm', 'configs/adding.py' or '/x/adding.py:a' (names a sweep root)."""
  return os.path.splitext(os.path.basename(spec.partition(":")[0]))[0]


def name_form(spec: str) -> str:
  """'configs/adding.py:lstm' (or the shipped file's absolute path) -> 'adding:lstm', the form that
  works from any directory; a config file of one's own stays a path."""
  path, sep, arg = spec.partition(":")
  resolved = resolve_config(path)
  if os.path.isfile(resolved) and os.path.dirname(os.path.abspath(resolved)) == configs_dir():
    return config_stem(path) + sep + arg
  return spec


_OLD_COMMAND = re.compile(r"python3? -m experiments\.(main|sweep)\b")
_OLD_CONFIG = re.compile(r"--config=(\S*configs/\w+\.py)(?=[:\s]|$)")


def portable_command(command: str) -> str:
  """A printed command in the form that works from any directory after `pip install .`:
  'python -m experiments.main --config=configs/adding.py:lstm ...' (as older results recorded it)
  -> 'python -m attnlab train --config=adding:lstm ...'."""
  command = _OLD_COMMAND.sub(lambda m: "python -m attnlab " + ("train" if m.group(1) == "main"
                                                               else "sweep"), command)
  return _OLD_CONFIG.sub(lambda m: "--config=" + name_form(m.group(1)), command)
