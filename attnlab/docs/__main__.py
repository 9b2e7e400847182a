"""python -m attnlab.docs --check | --write [--root=.] [FILE ...]

--check: re-render every generated table of README.md and docs/results/*/README.md (or of the
FILEs given) from its results file; exit 1 with a short diff naming file and table on any
difference. --write: rewrite the tables. A missing source file, an unknown table name or a bad
marker is one line on stderr and exit 2.
"""
import argparse
import sys

from attnlab.docs import blocks


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m attnlab.docs",
                                   description=__doc__.split("\n")[0])
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--check", action="store_true",
                    help="exit 1 if a table differs from its render")
  mode.add_argument("--write", action="store_true", help="rewrite the tables from their sources")
  parser.add_argument("--root", default=".", help="the repository root (default: .)")
  parser.add_argument("files", nargs="*", help="doc files relative to the root (default: all)")
  args = parser.parse_args(argv)
  try:
    if args.write:
      for path in blocks.write(args.root, args.files):
        print(f"rewrote {path}")
      return 0
    stale = blocks.check(args.root, args.files)
  except (ValueError, FileNotFoundError) as e:
    print(f"attnlab.docs: error: {e}", file=sys.stderr)
    return 2
  for path, name, diff in stale:
    print(f"{path}: table {name} differs from its source (python -m attnlab.docs --write):")
    print("\n".join(diff[2:]))
  return 1 if stale else 0


if __name__ == "__main__":
  sys.exit(main())
