"""Finding the marked tables in the docs, re-rendering them and comparing or rewriting them."""
import csv
import difflib
import glob
import json
import os
import re

DOC_FILES = ("README.md", "docs/results/*/README.md")
OPEN = re.compile(r"^<!-- attnlab\.docs (?P<args>.*?) -->$")
CLOSE = "<!-- /attnlab.docs -->"


def doc_paths(root: str) -> list:
  """Every doc file under `root` that may hold generated tables, repository-relative."""
  paths = []
  for pattern in DOC_FILES:
    paths += sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern)))
  if not paths:
    raise FileNotFoundError(f"no {' or '.join(DOC_FILES)} under {root}")
  return paths


def parse_args(text: str, where: str) -> dict:
  """'table=x source=a.json,b.json k=v' -> {'table': 'x', 'source': [...], 'k': 'v'}."""
  args = {}
  for item in text.split():
    key, sep, value = item.partition("=")
    if not sep or not value:
      raise ValueError(f"{where}: marker argument {item!r} is not key=value")
    args[key] = value
  for key in ("table", "source"):
    if key not in args:
      raise ValueError(f"{where}: marker without {key}=")
  args["source"] = args["source"].split(",")
  return args


def load_source(root: str, path: str):
  """A results file: .json parsed, .csv as a list of row dicts."""
  full = os.path.join(root, path)
  if not os.path.isfile(full):
    raise FileNotFoundError(f"source file not found: {path}")
  with open(full) as f:
    return list(csv.DictReader(f)) if path.endswith(".csv") else json.load(f)


def blocks(lines: list, path: str) -> list:
  """(start, end, args) per marked block: lines[start] is the opening marker, lines[end] the
  closing one."""
  found, start = [], None
  for i, line in enumerate(lines):
    if OPEN.match(line):
      if start is not None:
        raise ValueError(f"{path}:{i + 1}: marker opened inside the block of line {start + 1}")
      start = i
    elif line == CLOSE:
      if start is None:
        raise ValueError(f"{path}:{i + 1}: closing marker without an opening one")
      where = f"{path}:{start + 1}"
      found.append((start, i, parse_args(OPEN.match(lines[start]).group("args"), where)))
      start = None
  if start is not None:
    raise ValueError(f"{path}:{start + 1}: marker never closed ({CLOSE})")
  return found


def render_file(root: str, path: str) -> tuple:
  """(current lines, rendered lines, [(table name, diff lines)]) of one doc file."""
  from attnlab.docs.renderers import render
  if not os.path.isfile(os.path.join(root, path)):
    raise FileNotFoundError(f"doc file not found: {os.path.join(root, path)}")
  with open(os.path.join(root, path)) as f:
    lines = f.read().split("\n")
  out, diffs, last = [], [], 0
  for start, end, args in blocks(lines, path):
    name = args.pop("table")
    sources = [(s, load_source(root, s)) for s in args.pop("source")]
    new = render(name, sources, args, doc=path, where=f"{path}:{start + 1}")
    old = lines[start + 1:end]
    if new != old:
      diffs.append((name, list(difflib.unified_diff(old, new, f"{path} table={name} (committed)",
                                                    f"{path} table={name} (rendered)", lineterm="",
                                                    n=0))))
    out += lines[last:start + 1] + new
    last = end
  out += lines[last:]
  return lines, out, diffs


def check(root: str = ".", paths=None) -> list:
  """[(path, table name, diff lines)] for every generated table that differs from its render."""
  found = []
  for path in paths or doc_paths(root):
    found += [(path, name, diff) for name, diff in render_file(root, path)[2]]
  return found


def write(root: str = ".", paths=None) -> list:
  """Rewrites every generated table from its source; returns the paths it changed."""
  changed = []
  for path in paths or doc_paths(root):
    old, new, _ = render_file(root, path)
    if new != old:
      with open(os.path.join(root, path), "w") as f:
        f.write("\n".join(new))
      changed.append(path)
  return changed
