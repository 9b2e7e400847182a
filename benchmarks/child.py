"""Entry point of a benchmark child process: `python -m benchmarks.child '<task json>'`.

The task's 'kind' picks the function (layer, long, compile); its result goes back to the parent
with `subproc.report`.
"""
import json
import sys


def main(argv):
  task = json.loads(argv[1])
  kind = task["kind"]
  if kind == "layer":
    from . import layers
    result = layers.child(task)
  elif kind == "long":
    from . import long_seq
    result = long_seq.child(task)
  elif kind == "compile":
    from . import compile_times
    result = compile_times.child(task)
  else:
    raise ValueError(f"unknown child task kind {kind!r}")
  from . import subproc
  subproc.report(result)


if __name__ == "__main__":
  main(sys.argv)
