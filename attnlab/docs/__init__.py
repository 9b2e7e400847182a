"""attnlab.docs: the results tables of README.md and docs/results/*/README.md, rendered from the
committed results files so that no number in them can go stale.

A generated table sits between two markers; NAME picks a renderer (`renderers.RENDERERS`), SOURCE
the results file(s) it reads (comma-separated, relative to the repository root), other key=value
pairs are the renderer's options:

  <!-- attnlab.docs table=NAME source=docs/results/x/results.json key=value -->
  | ... the rendered table ... |
  <!-- /attnlab.docs -->

`python -m attnlab.docs --check` re-renders every block and exits 1 on a difference (a short diff
naming file and table); `--write` rewrites the blocks in place.
"""
from attnlab.docs.blocks import DOC_FILES, check, write

__all__ = ["DOC_FILES", "check", "write"]
