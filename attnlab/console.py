"""Console logging as absl users expect: `--verbosity` / `-v` decides what is logged.

absl switches an unset --verbosity from WARNING to INFO once the flags are parsed, which floods the
console with JAX's and orbax's notes; a command line that did not give the flag keeps WARNING, one
that did (`-v 0` for INFO, `-v 1` for DEBUG) gets what it asked for.
"""
from absl import flags, logging


def apply_verbosity():
  """WARNING unless --verbosity/-v was given (then its level); call after the flags are parsed."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
